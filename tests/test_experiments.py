"""The analysis scripts of experiments/ (a) methods, (b) sensitivity, (c) CSI traces, each on
the real W&B offline runs of the shared smoke sweep (two IB proxies, beta 0.1 and 0.01); and
the Makefile's experiment targets, which run the grids of conf/grid/ (tests/test_grids.py)
and then those scripts (`make -n`: the commands, nothing run)."""
import importlib.util
import os
import shlex
import subprocess

import numpy as np
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


def test_methods_grid_plot_has_a_panel_per_noise_and_proxy_size(tmp_path):
    """A panel per (label noise, proxy size), methods in colors. Read back from the PNG's size (IHDR)."""
    plot = script("methods").plot_grid
    rows = [{"eval/kl": kl, "reward/gold": 0.5 - kl / 4, "reward/proxy_eval": kl / 2} for kl in (0.0, 1.0, 2.0)]
    runs = [{"method": m, "size": size, "noise": noise, "seed": seed, "rows": rows}
            for m in ("BT", "IB", "BSR", "WARM") for size in ("tiny", "tiny-large") for noise in (0.0, 0.25) for seed in (0, 1)]
    data = plot(runs, tmp_path / "grid.png").read_bytes()
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (920, 720)  # 2 noises x 2 sizes


@pytest.mark.slow
def test_methods_grid_analysis_draws_gold_and_proxy_against_kl_and_logs_to_wandb(sweep, tmp_path):
    root, _ = sweep
    rows = script("methods").main(["grid", str(root / "multirun"), "--out", str(tmp_path), "--n-boot", "200"])
    # IB proxies at beta 0.1 (the paper's default) and 0.01, tiny, label noise 0.25: one row each
    assert sorted(r["method"] for r in rows) == ["IB", "IB (beta 0.01)"]
    row = next(r for r in rows if r["method"] == "IB")
    assert (row["size"], row["noise"], row["seeds"]) == ("tiny", 0.25, 1)
    assert row["peak_gold"]["mean"] >= row["sft_gold"]["mean"] and row["final_kl"]["mean"] > 0
    assert row["peak_gold"]["n"] == 1 and np.isnan(row["peak_gold"]["mean_lo"])  # one seed: a value, no interval
    assert (tmp_path / "methods.png").read_bytes()[:8] == PNG
    assert "| 0.25 | tiny | IB | 1 |" in (tmp_path / "results.md").read_text()
    (run,) = [r for r in find_runs(tmp_path) if r.name == "methods-analysis"]
    assert run.job_type == "analysis" and any("analysis/methods" in f for f in run.files)


@pytest.mark.slow
def test_sensitivity_analysis_fills_the_grid_from_rm_and_ppo_runs(sweep, tmp_path):
    root, _ = sweep
    cells = script("sensitivity").main([str(root / "multirun"), "--out", str(tmp_path), "--no-wandb", "--n-boot", "200"])
    assert set(cells) == {(0.1, 128), (0.01, 128)}
    for cell in cells.values():
        assert len(cell["rm_acc"]) == 1 and 0.5 < cell["rm_acc"][0] <= 1.0  # the sweep's own rm runs
        assert len(cell["peak_gold"]) == len(cell["final_gold"]) == 1 and cell["final_kl"][0] > 0
    text = (tmp_path / "results.md").read_text()
    assert "| 0.1 | 128 |" in text and "| 0.01 | 128 |" in text
    assert (tmp_path / "sensitivity.png").read_bytes()[:8] == PNG
    # each point against the paper's (0.1, 128), paired by seed (inform.report.compare)
    compared = (tmp_path / "compare" / "results.md").read_text()
    assert "against the baseline **beta 0.1, d 128**" in compared and "| beta 0.01, d 128 | 1 | 0 | none |" in compared


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
    text = (tmp_path / "results.md").read_text()
    lag = np.mean([t["fire_step"] - t["peak_step"] for t in traces])
    assert text.count("| ib | 0 |") == 2 and f"| ib | 2 | 2 | {lag:.1f} [" in text  # a row per run, then their mean [CI]


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
                           ["experiments/methods/analyze.py", "grid", "experiments/methods/runs", "--out", "experiments/methods/"]),
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
    assert grids == {g for gs, _ in TARGETS.values() for g in gs} | {"rm_accuracy/gpu", "methods/compare"}


def test_experiment_args_reach_every_grid_and_slurm_gets_the_same_grids():
    *runs, analysis = make_n("experiment-detectors", "EXPERIMENT_ARGS=seed=0,1 ppo.steps=8")
    assert [r[3:] for r in runs] == [[f"grid=detectors/{g}", "seed=0,1", "ppo.steps=8"] for g in ("detect", "ibl", "eppo")]
    *runs, analysis = make_n("experiment-detectors", "EXPERIMENT_ARGS=--slurm seed=0,1", "SBATCH_ARGS=-p gpu --time=2:00:00")
    assert runs == [["sbatch", "-p", "gpu", "--time=2:00:00", "slurm/sweep.sh", f"grid=detectors/{g}", "seed=0,1"]
                    for g in ("detect", "ibl", "eppo")]
    assert analysis[:3] == ["echo", "when the arrays are done:", ".venv/bin/python"]  # printed, not run
    *runs, analysis = make_n("experiment-sensitivity", "RUNS=/tmp/s", "EXPERIMENT_ARGS=--slurm")  # RUNS: a folder of one's own
    assert runs == [["sbatch", "slurm/sweep.sh", "grid=sensitivity", "hydra.sweep.dir=/tmp/s"]] and "/tmp/s" in analysis


def test_methods_compare_runs_a_chunk_of_seeds_in_its_folder_and_rm_accuracy_modes():
    (run, analysis) = make_n("experiment-methods-compare", "SEEDS=5,6")
    assert run[3:] == ["grid=methods/compare", "hydra.sweep.dir=experiments/methods/runs/compare/seeds_5-6", "seed=5,6"]
    assert analysis[1:] == ["experiments/methods/analyze.py", "compare", "experiments/methods/runs/compare/seeds_5-6",
                            "--out", "experiments/methods/compare"]
    (run, _) = make_n("experiment-methods-compare", "EXPERIMENT_ARGS=--slurm", "SBATCH_ARGS=-p cpu")
    assert run == ["sbatch", "-p", "cpu", "slurm/sweep.sh", "grid=methods/compare",
                   "hydra.sweep.dir=experiments/methods/runs/compare/seeds_0-1-2-3-4-5-6-7-8-9", "seed=0,1,2,3,4,5,6,7,8,9"]
    (run, evaluate) = make_n("experiment-rm-accuracy", "RM_ACCURACY_ARGS=")  # the GPU mode
    assert run[3:] == ["grid=rm_accuracy/gpu"] and "--dtype" in evaluate
    (run, _) = make_n("experiment-rm-accuracy", "RM_ACCURACY_ARGS=--slurm")
    assert run == ["sbatch", "--gres=gpu:1", "--cpus-per-task=8", "--mem=64G", "--time=12:00:00", "slurm/sweep.sh", "grid=rm_accuracy/gpu"]


def test_run_sh_is_the_make_target():
    (run, _) = make_n("--tiny", "--slurm", "seed=3", script="experiments/rm_accuracy/run.sh")
    assert run == ["sbatch", "slurm/sweep.sh", "grid=rm_accuracy/tiny", "seed=3"]
    *runs, analysis = make_n("seed=0,1", script="experiments/methods/run.sh")
    assert [r[3:] for r in runs] == [[f"grid=methods/{g}", "seed=0,1"] for g in ("objectives", "ensembles", "bt_kl")]
    assert analysis[1:4] == ["experiments/methods/analyze.py", "grid", "experiments/methods/runs"]


# ---------------------------------------------------------------------------- (a) compare, on a real sweep
@pytest.fixture(scope="module")
def compare_sweep(tmp_path_factory):
    """`python run.py -m grid=methods/compare method=bt,bt_kl,ib seed=0,1,2` at the sizes of the
    stage-graph tests (every stage in seconds; 4 PPO steps, an eval after each): nine real PPO
    runs, their W&B offline files in the sweep folder."""
    from tests.conftest import run_inform
    from tests.test_stage_graph import TINY

    root = tmp_path_factory.mktemp("compare")
    run_inform("-m", "grid=methods/compare", "method=bt,bt_kl,ib", "seed=0,1,2", *TINY, "logger=wandb", "ppo.steps=4",
               "ppo.eval_every=1", f"hydra.sweep.dir={root}/sweep/seeds_0-2", cwd=root, timeout=900)
    return root


@pytest.mark.slow
def test_methods_compare_on_a_real_sweep_equals_a_direct_computation_from_the_run_files(compare_sweep, tmp_path):
    from inform.report.compare import on_kl_grid, peak, read_tidy

    methods = script("methods")
    out = tmp_path / "compare"
    report = methods.main(["compare", str(compare_sweep / "sweep" / "seeds_0-2"), "--out", str(out), "--seeds", "4",
                           "--n-boot", "500"])
    res = report["results"]
    # the run files, read directly: gold and KL of each PPO run's eval rows, by (method, seed)
    direct: dict = {}
    for run in find_runs(compare_sweep / "sweep", merge_resumed=True):
        if run.job_type == "ppo":
            rows = sorted((r["trainer/global_step"], r["eval/kl"], r["reward/gold"]) for r in run.history if "reward/gold" in r)
            direct[(methods.method_of(run.config), run.config["seed"])] = np.array([r[1:] for r in rows]).T  # (2, t)
    assert sorted(direct) == [(m, s) for m in ("BT", "BT+KL", "IB") for s in (0, 1, 2)]
    assert all(v.shape == (2, 5) for v in direct.values())  # steps 0..4
    # coverage: three methods of seven ran, seeds 0-2 of the 4 expected; the other four methods are missing
    cov = {c["method"]: c for c in res["coverage"]}
    assert cov["BT"]["seeds"] == [0, 1, 2] and cov["BT"]["missing_seeds"] == [3]
    assert cov["WARM"]["runs"] == 0 and cov["WARM"]["missing_seeds"] == [0, 1, 2, 3]
    # peaks: the mean over seeds of each run's max gold
    for row in res["peaks"]:
        if row["n_runs"]:
            want = np.mean([peak(*direct[(row["method"], s)])[0] for s in (0, 1, 2)])
            assert row["peak_mean"] == pytest.approx(want, abs=1e-9)
            assert row["peak_mean_lo"] <= row["peak_mean"] <= row["peak_mean_hi"]
    # the curves: at each grid point, the mean over the seeds that reached it
    for row in res["curve"]:
        vals = [on_kl_grid(*direct[(row["method"], s)], [row["kl"]])[0] for s in (0, 1, 2)]
        reached = [v for v in vals if np.isfinite(v)]
        assert row["n_reached"] == len(reached)
        if reached:
            assert row["mean"] == pytest.approx(np.mean(reached), abs=1e-9)
    # paired differences at the peak: mean over seeds of (method - BT)
    ib = next(r for r in res["peaks"] if r["method"] == "IB")
    assert ib["diff"] == pytest.approx(np.mean([peak(*direct[("IB", s)])[0] - peak(*direct[("BT", s)])[0] for s in (0, 1, 2)]))
    # the files: results.md with n per cell, the chunk's tidy CSV (read back = the table), the figure, the W&B run
    text = (out / "results.md").read_text()
    assert "| WARM | 0 |  | 0, 1, 2, 3 |" in text and "| BT | 3 | 0, 1, 2 | 3 |" in text
    chunk = read_tidy(out / "tidy" / "seeds_0-2.csv")
    assert len(chunk) == 9 * 5 and {r["method"] for r in chunk} == {"BT", "BT+KL", "IB"}
    assert (out / "comparison.png").read_bytes()[:8] == PNG
    (run,) = [r for r in find_runs(out) if r.name == "methods-compare-analysis"]
    assert any("analysis/methods_compare" in f for f in run.files) and any("analysis/peaks" in f for f in run.files)
    # the committed chunks alone (a clean clone: no run folders) give the same tables
    again = methods.main(["compare", "--out", str(out), "--seeds", "4", "--n-boot", "500", "--no-wandb"])["results"]
    assert again["peaks"] == res["peaks"] and again["coverage"] == res["coverage"]
