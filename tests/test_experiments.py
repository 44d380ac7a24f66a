"""The analysis scripts of experiments/ (a) methods, (b) sensitivity, (c) CSI traces, each on
the real W&B offline runs of the shared smoke sweep (two IB proxies, beta 0.1 and 0.01); and
the Makefile's experiment targets, which run the grids of conf/grid/ (tests/test_grids.py)
and then those scripts (`make -n`: the commands, nothing run)."""
import importlib.util
import os
import shlex
import subprocess

import pytest

from inform.tracking.wandb_offline import find_runs
from tests.conftest import ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def script(name: str):
    spec = importlib.util.spec_from_file_location(f"analyze_{name}", ROOT / "experiments" / name / "analyze.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_methods_are_told_apart_by_their_configs():
    method_of = script("methods").method_of
    base = {"objective": {"name": "bt"}, "kl_coef": 0.05, "ensemble": {"members": 1, "combine": "mean"}}
    assert method_of(base) == "BT"
    assert method_of({**base, "kl_coef": 0.2}) == "BT+KL"
    assert method_of({**base, "objective": {"name": "ib"}, "beta": 0.1, "latent_dim": 128}) == "IB"
    assert method_of({**base, "objective": {"name": "ib"}, "beta": 0.01, "latent_dim": 64}) == "IB (beta 0.01, d 64)"
    assert method_of({**base, "objective": {"name": "bsr"}}) == "BSR"
    assert method_of({**base, "ensemble": {"members": 3, "combine": "uwo"}}) == "Ensemble-UWO"
    assert method_of({**base, "ensemble": {"members": 3, "combine": "warm"}}) == "WARM"
    assert method_of({**base, "objective": {"name": "bt_margin"}}) == "BT-MARGIN"


def test_methods_plot_has_a_panel_per_proxy_size_or_per_method_for_several_seeds(tmp_path):
    """by="size": a panel per (noise, size), methods in colors; by="method" (several seeds): a
    panel per method, 3 to a line, seeds in colors. Read back from the PNG's size (IHDR)."""
    plot = script("methods").plot
    rows = [{"eval/kl": kl, "reward/gold": 0.5 - kl / 4, "reward/proxy_eval": kl / 2} for kl in (0.0, 1.0, 2.0)]
    runs = [{"method": m, "size": size, "noise": 0.25, "seed": seed, "rows": rows}
            for m in ("BT", "IB", "BSR", "WARM") for size in ("tiny", "tiny-large") for seed in (0, 1, 2)]

    def width_height(png):
        data = png.read_bytes()
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")

    assert width_height(plot(runs, tmp_path / "by-size.png")) == (920, 360)  # 1 noise x 2 sizes
    assert width_height(plot(runs, tmp_path / "by-method.png", by="method")) == (1380, 1440)  # per size 2 lines of 3 panels (4 methods)


@pytest.mark.slow
def test_methods_analysis_draws_gold_and_proxy_against_kl_and_logs_to_wandb(sweep, tmp_path):
    root, _ = sweep
    rows = script("methods").main([str(root / "multirun"), "--out", str(tmp_path)])
    # IB proxies at beta 0.1 (the paper's default) and 0.01, tiny, label noise 0.25: one row each
    assert sorted(r["method"] for r in rows) == ["IB", "IB (beta 0.01, d 128)"]
    row = next(r for r in rows if r["method"] == "IB")
    assert (row["size"], row["noise"], row["seeds"]) == ("tiny", 0.25, 1)
    assert row["peak_gold"][0] >= row["sft_gold"][0] and row["final_kl"][0] > 0
    assert (tmp_path / "methods.png").read_bytes()[:8] == PNG
    assert "| 0.25 | tiny | IB | 1 |" in (tmp_path / "results.md").read_text()
    (run,) = [r for r in find_runs(tmp_path) if r.name == "methods-analysis"]
    assert run.job_type == "analysis" and any("analysis/methods" in f for f in run.files)


@pytest.mark.slow
def test_sensitivity_analysis_fills_the_grid_from_rm_and_ppo_runs(sweep, tmp_path):
    root, _ = sweep
    cells = script("sensitivity").main([str(root / "multirun"), "--out", str(tmp_path), "--no-wandb"])
    assert set(cells) == {(0.1, 128), (0.01, 128)}
    for cell in cells.values():
        assert len(cell["rm_acc"]) == 1 and 0.5 < cell["rm_acc"][0] <= 1.0  # the sweep's own rm runs
        assert len(cell["peak_gold"]) == len(cell["final_gold"]) == 1 and cell["final_kl"][0] > 0
    text = (tmp_path / "results.md").read_text()
    assert "| 0.1 | 128 |" in text and "| 0.01 | 128 |" in text
    assert (tmp_path / "sensitivity.png").read_bytes()[:8] == PNG


@pytest.mark.slow
def test_csi_traces_analysis_replays_early_stopping_against_the_gold_peak(sweep, tmp_path):
    root, _ = sweep
    traces = script("csi_traces").main([str(root / "multirun"), "--out", str(tmp_path), "--no-wandb", "--e-max", "1e-9"])
    assert len(traces) == 2
    for t in traces:
        assert t["steps"] == [0, 4, 8, 12, 16] and len(t["csi"]) == 5
        assert t["fire_step"] == 8  # e_max tiny: the rule fires at its first ratio, the third CSI value
        assert t["gold"][t["steps"].index(t["peak_step"])] == max(t["gold"])
    assert (tmp_path / "csi_traces.png").read_bytes()[:8] == PNG
    assert (tmp_path / "results.md").read_text().count("| ib |") == 2


def make_n(*args: str, script: str | None = None) -> list[list[str]]:
    """The commands `make -n <args>` (or `bash <script> <args>` under MAKEFLAGS=n) would run."""
    cmd = ["bash", script, *args] if script else ["make", "-n", "--no-print-directory", *args]
    env = {**os.environ, "MAKEFLAGS": "n"} if script else None
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [shlex.split(line) for line in proc.stdout.splitlines() if line.strip() and not line.startswith("make")]
    return [c for c in lines if any(w.startswith(("grid=", "experiments/")) for w in c)]  # not the venv's


TARGETS = {  # target: its grids (conf/grid/), then its analysis and what the analysis reads
    "experiment-methods": (["methods/objectives", "methods/ensembles", "methods/bt_kl"],
                           ["experiments/methods/analyze.py", "experiments/methods/runs", "--out", "experiments/methods/", "--panels", "size"]),
    "experiment-sensitivity": (["sensitivity"], ["experiments/sensitivity/analyze.py", "experiments/sensitivity/runs"]),
    "experiment-csi-traces": (["csi_traces"], ["experiments/csi_traces/analyze.py", "experiments/csi_traces/runs"]),
    "experiment-detectors": (["detectors/detect", "detectors/ibl", "detectors/eppo"],
                             ["experiments/detectors/analyze.py", "experiments/detectors/runs"]),
    "experiment-rm-accuracy": (["rm_accuracy/tiny"], ["experiments/rm_accuracy/evaluate.py", "experiments/rm_accuracy/runs/artifacts",
                                                      "--out", "experiments/rm_accuracy/", "--limit", "500", "--device", "cpu"]),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_an_experiment_target_runs_its_grids_then_its_analysis(target):
    grids, analysis = TARGETS[target]
    *runs, last = make_n(target)
    assert runs == [[".venv/bin/python", "run.py", "-m", f"grid={g}"] for g in grids]
    assert last[0] == ".venv/bin/python" and last[1:1 + len(analysis)] == analysis


def test_every_grid_file_has_a_make_target():
    grids = {p.relative_to(ROOT / "conf" / "grid").with_suffix("").as_posix() for p in (ROOT / "conf" / "grid").rglob("*.yaml")}
    assert grids == {g for gs, _ in TARGETS.values() for g in gs} | {"rm_accuracy/gpu"}


def test_experiment_args_reach_every_grid_and_slurm_gets_the_same_grids():
    *runs, analysis = make_n("experiment-detectors", "EXPERIMENT_ARGS=seed=0,1 ppo.steps=8")
    assert [r[3:] for r in runs] == [[f"grid=detectors/{g}", "seed=0,1", "ppo.steps=8"] for g in ("detect", "ibl", "eppo")]
    *runs, analysis = make_n("experiment-detectors", "EXPERIMENT_ARGS=--slurm seed=0,1", "SBATCH_ARGS=-p gpu --time=2:00:00")
    assert runs == [["sbatch", "-p", "gpu", "--time=2:00:00", "slurm/sweep.sh", f"grid=detectors/{g}", "seed=0,1"]
                    for g in ("detect", "ibl", "eppo")]
    assert analysis[:3] == ["echo", "when the arrays are done:", ".venv/bin/python"]  # printed, not run
    *runs, analysis = make_n("experiment-sensitivity", "RUNS=/tmp/s", "EXPERIMENT_ARGS=--slurm")  # RUNS: a folder of one's own
    assert runs == [["sbatch", "slurm/sweep.sh", "grid=sensitivity", "hydra.sweep.dir=/tmp/s"]] and "/tmp/s" in analysis


def test_methods_seeds_and_rm_accuracy_modes():
    *runs, analysis = make_n("experiment-methods-seeds")
    assert [r[3:5] for r in runs] == [[f"grid=methods/{g}", f"hydra.sweep.dir=experiments/methods/runs/seeds/{g}"]
                                      for g in ("objectives", "ensembles", "bt_kl")]
    assert all("seed=0,1,2" in r and "model@reward=tiny" in r and "paths.artifacts=experiments/methods/runs/seeds-cache" in r for r in runs)
    assert analysis[2:] == ["experiments/methods/runs/seeds", "--out", "experiments/methods/seeds", "--panels", "method"]
    (run, evaluate) = make_n("experiment-rm-accuracy", "RM_ACCURACY_ARGS=")  # the GPU mode
    assert run[3:] == ["grid=rm_accuracy/gpu"] and "--dtype" in evaluate
    (run, _) = make_n("experiment-rm-accuracy", "RM_ACCURACY_ARGS=--slurm")
    assert run == ["sbatch", "--gres=gpu:1", "--cpus-per-task=8", "--mem=64G", "--time=12:00:00", "slurm/sweep.sh", "grid=rm_accuracy/gpu"]


def test_run_sh_is_the_make_target():
    (run, _) = make_n("--tiny", "--slurm", "seed=3", script="experiments/rm_accuracy/run.sh")
    assert run == ["sbatch", "slurm/sweep.sh", "grid=rm_accuracy/tiny", "seed=3"]
    *runs, analysis = make_n("seed=0,1", script="experiments/methods/run.sh")
    assert [r[3:] for r in runs] == [[f"grid=methods/{g}", "seed=0,1"] for g in ("objectives", "ensembles", "bt_kl")]
    assert analysis[-2:] == ["--panels", "method"]  # several seeds: a panel per method
