"""The simulated gold-RM pipeline through the real entry point: a 2-point sweep of the smoke
experiment (conf/experiment/smoke.yaml), its cache, its labels, PPO, and W&B read back."""
import json
import math
import struct
from pathlib import Path

import pytest

import torch

from inform.tracking.csv_metrics import read_csv_metrics, series
from inform.tracking.wandb_offline import find_runs
from tests.conftest import ROOT, run_inform

pytestmark = pytest.mark.slow
PPO_METRICS = ["objective/kl", "objective/entropy", "policy/clipfrac", "policy/approxkl", "critic/loss",
               "critic/vf_explained_var", "reward/proxy"]


def artifacts(root: Path, stage: str) -> list[Path]:
    return sorted(p for p in (root / "artifacts").glob(f"{stage}-*") if p.is_dir())


def test_sweep_builds_upstream_once_and_two_rms_and_ppos(sweep):
    root, proc = sweep
    counts = {s: len(artifacts(root, s)) for s in ("sft", "gold", "label", "rm", "sft_stats", "sft_train_stats", "ppo")}
    assert counts == {"sft": 1, "gold": 1, "label": 1, "rm": 2, "sft_stats": 2, "sft_train_stats": 2, "ppo": 2}
    runs = find_runs(root / "multirun")
    assert sorted(r.job_type for r in runs) == ["gold", "ppo", "ppo", "rm", "rm", "sft"]
    assert sorted(r.config["beta"] for r in runs if r.job_type == "ppo") == [0.01, 0.1]
    assert proc.stdout.count("sft: built") == 1 and proc.stdout.count("gold: built") == 1


def test_label_stage_flips_the_configured_share(sweep):
    root, _ = sweep
    (label,) = artifacts(root, "label")
    pairs = [json.loads(line) for line in (label / "pairs.jsonl").read_text().splitlines()]
    stats = json.loads((label / "stats.json").read_text())
    flipped = [p for p in pairs if p["flipped"]]
    assert stats["n_prompts"] == 600 and len(pairs) == stats["n_pairs"] > 550
    assert len(flipped) == round(0.25 * len(pairs)) == stats["n_flipped"]
    # a flipped pair prefers the response the gold RM scored lower, the others the higher one
    assert all(p["gold_chosen"] <= p["gold_rejected"] for p in flipped)
    assert all(p["gold_chosen"] >= p["gold_rejected"] for p in pairs if not p["flipped"])
    assert all(p["chosen"] != p["rejected"] for p in pairs)


def test_ppo_raises_the_proxy_reward_and_the_critic_learns(sweep):
    root, _ = sweep
    for ppo in artifacts(root, "ppo"):
        history = json.loads((ppo / "eval_history.json").read_text())["history"]
        assert [h["step"] for h in history] == [0, 4, 8, 12, 16]
        sft, final = history[0], history[-1]
        # mean over the 128 eval prompts, in SD units of the SFT samples
        assert final["reward/proxy_eval"] > sft["reward/proxy_eval"] + 0.5, history
        assert final["eval/kl"] > 0.5
    for run in (r for r in find_runs(root / "multirun") if r.job_type == "ppo"):
        ev = [v for _, v in run.series("critic/vf_explained_var")]
        assert len(ev) == 16
        # the value head starts untrained (step 1); later steps explain much more of the returns
        assert sum(ev[8:]) / 8 > ev[0] + 0.3, ev


def test_ppo_metrics_gold_reward_and_curve_are_in_the_wandb_run(sweep):
    root, _ = sweep
    for run in (r for r in find_runs(root / "multirun") if r.job_type == "ppo"):
        ppo_dir = run.path.parents[1]
        for key in PPO_METRICS:
            series = run.series(key)
            assert [s for s, _ in series] == list(range(1, 17)), key  # one value per PPO step
            assert all(math.isfinite(v) for _, v in series), key
        gold = run.series("reward/gold")
        assert [s for s, _ in gold] == [0, 4, 8, 12, 16]
        (artifact,) = [a for a in artifacts(root, "ppo") if json.loads((a / "metrics.json").read_text())["runs"]["wandb"] == str(run.path)]
        history = json.loads((artifact / "eval_history.json").read_text())["history"]
        assert [v for _, v in gold] == pytest.approx([h["reward/gold"] for h in history])
        images = [f for f in run.files if f.startswith("media/images/curves/overoptimization")]
        assert len(images) == 1
        png = (run.path / "files" / images[0]).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[0] > 500  # width
        assert (ppo_dir / "overoptimization.png").is_file()


def test_rerunning_a_point_reuses_every_stage(sweep):
    root, _ = sweep
    before = len(find_runs(root))
    proc = run_inform("experiment=smoke", "beta=0.01", cwd=root)
    for stage in ("sft", "gold", "label", "rm", "sft_stats", "sft_train_stats", "ppo"):
        assert f"{stage}: reusing" in proc.stdout, stage
        assert f"{stage}: built" not in proc.stdout
    assert len(find_runs(root)) == before  # nothing trained, no new W&B run


def test_csi_is_logged_once_per_eval_step_in_wandb_and_csv_alike(sweep):
    root, _ = sweep
    for run in (r for r in find_runs(root / "multirun") if r.job_type == "ppo"):
        csi = run.series("csi/value")
        assert [s for s, _ in csi] == [0, 4, 8, 12, 16]  # exactly one per eval step, on the eval's step
        assert all(v >= 0 for _, v in csi)
        csv_rows = read_csv_metrics(run.path.parents[1] / "csv")
        assert series(csv_rows, "csi/value") == [(s, pytest.approx(v)) for s, v in csi]
        assert [s for s, _ in series(csv_rows, "reward/gold")] == [s for s, _ in csi]  # same axis as gold
        assert [s for s, _ in run.series("csi/n_clusters")] == [0, 4, 8, 12, 16]
        latents = run.path.parents[1] / "csi"
        assert (latents / "latents_step00000.png").is_file() and (latents / "latents.npz").is_file()
        assert any(f.startswith("media/images/csi/latents") for f in run.files)


def test_csi_early_stopping_stops_ppo_and_keeps_that_steps_checkpoint(sweep):
    """e_max tiny: the rule fires at its first ratio, i.e. the third CSI value (step 8)."""
    root, _ = sweep
    proc = run_inform("experiment=smoke", "beta=0.01", "early_stop.enabled=true", "early_stop.e_max=1e-9", cwd=root)
    assert "early stop: csi/value change rate" in proc.stdout and "at step 8, stopping" in proc.stdout
    out = Path(proc.stdout.split("ppo: export -> ")[1].split()[0])
    out = out if out.is_absolute() else root / out
    history = json.loads((out / "eval_history.json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 4, 8] and history[-1]["csi/stop_step"] == 8
    assert json.loads((out / "metrics.json").read_text())["early_stop/stop_step"] == 8
    (run,) = [r for r in find_runs(root / "outputs") if r.job_type == "ppo"]
    assert max(s for s, _ in run.series("objective/kl")) == 8  # nothing trained after the stop
    assert run.series("csi/stop_step") == [(8, 8.0)]
    ckpt = torch.load(run.path.parents[1] / "csi" / "csi_stop.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["ppo"]["iteration"] == 8
    from transformers import AutoModelForCausalLM

    exported = AutoModelForCausalLM.from_pretrained(out / "policy").state_dict()
    assert len(exported) > 10
    for key, value in exported.items():
        assert torch.equal(ckpt["state_dict"][f"policy.{key}"], value), key


def test_every_detector_logs_at_every_eval_step(sweep):
    root, _ = sweep
    for run in (r for r in find_runs(root / "multirun") if r.job_type == "ppo"):
        for key in ("detect/mahalanobis_mean", "detect/mop", "detect/energy_gap", "csi/value"):
            series = run.series(key)
            assert [s for s, _ in series] == [0, 4, 8, 12, 16], key  # on the eval steps, with reward/gold
            assert all(math.isfinite(v) for _, v in series), key
        assert all(0.0 <= v <= 1.0 for _, v in run.series("detect/mop"))
        assert [s for s, _ in run.series("rollout/mahalanobis_mean")] == list(range(1, 17))


def test_zero_mitigation_coefficients_leave_ppo_unchanged_and_nonzero_ones_apply(sweep):
    """Detectors and their hooks change nothing; IBL and EPPO change the rewards."""
    root, _ = sweep
    plain = run_inform("experiment=smoke", "beta=0.01", "detect=[csi]", "logger=csv", f"hydra.run.dir={root}/plain", cwd=root)
    mitigated = run_inform("experiment=smoke", "beta=0.01", "ibl_coef=0.05", "energy_coef=2.0", "logger=csv",
                           f"hydra.run.dir={root}/mitigated", cwd=root)
    assert "ppo: built" in plain.stdout and "ppo: built" in mitigated.stdout
    (full,) = [r for r in find_runs(root / "multirun") if r.job_type == "ppo" and r.config["beta"] == 0.01]
    rows_plain = read_csv_metrics(root / "plain" / "ppo" / "csv")
    for key in ("objective/kl", "reward/proxy", "critic/loss", "policy/loss"):
        assert [v for _, v in series(rows_plain, key)] == [v for _, v in full.series(key)], key  # bit for bit
    rows_mit = read_csv_metrics(root / "mitigated" / "ppo" / "csv")
    assert series(rows_mit, "reward/proxy") != series(rows_plain, "reward/proxy")
    assert len(series(rows_mit, "rollout/energy_gap")) == 16 and len(series(rows_mit, "rollout/mahalanobis_mean")) == 16


def test_detector_analysis_script_reads_the_runs_back_and_draws_its_figures(sweep, tmp_path):
    """experiments/detectors/analyze.py on this module's real runs (IB proxies, every detector)."""
    import importlib.util

    root, _ = sweep
    spec = importlib.util.spec_from_file_location("analyze", ROOT / "experiments" / "detectors" / "analyze.py")
    analyze = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(analyze)
    result = analyze.main([str(root / "multirun"), "--out", str(tmp_path), "--n-boot", "200"])
    table = {(r["objective"], r["detector"]): r for r in result["detectors"]}
    assert set(table) == {("ib", "CSI"), ("ib", "Mahalanobis"), ("ib", "MOP"), ("ib", "energy gap")}
    assert all(r["runs"] == 2 for r in table.values())
    for name in ("detectors.png", "mitigations/comparison.png"):
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    text = (tmp_path / "results.md").read_text()
    assert "| ib | Mahalanobis |" in text and "| plain | 1 |" in text and "| plain (beta 0.01) | 1 |" in text
    assert result["mitigations"]["baseline"] == "plain" and (tmp_path / "mitigations" / "results.md").exists()
    (run,) = [r for r in find_runs(tmp_path) if r.job_type == "analysis"]
    assert sorted(f.split("_")[0] for f in run.files if f.startswith("media/images")) == ["media/images/analysis/detectors", "media/images/analysis/mitigations"]
