"""The real entry point on tiny configs: SFT, reward models, the local sweep, W&B read back."""
import json
import math
from pathlib import Path

import pytest

from inform.tracking.wandb_offline import find_runs
from tests.conftest import FIXTURES, run_inform

pytestmark = pytest.mark.slow


def _artifacts(cwd: Path, stage: str) -> list[Path]:
    return sorted(p for p in (cwd / "artifacts").glob(f"{stage}-*") if p.is_dir())


def test_sft_then_reward_model_learns_and_is_cached(tmp_path):
    """`stage=rm rm.init=sft` trains SFT, then an RM from it; a rerun reuses both exports."""
    args = ["stage=rm", "objective=bt", "rm.data=human", "rm.init=sft", "sft.max_steps=200", "sft.val_every=100", "rm.epochs=1"]
    run_inform(*args, cwd=tmp_path)
    (sft,), (rm,) = _artifacts(tmp_path, "sft"), _artifacts(tmp_path, "rm")
    sft_metrics = json.loads((sft / "metrics.json").read_text())
    rm_metrics = json.loads((rm / "metrics.json").read_text())
    # SFT: far below a uniform guess over the ~340-token vocabulary (ppl 340)
    assert sft_metrics["val/ppl"] < 8.0
    # the RM from the SFT backbone ranks held-out synthetic human preferences well above chance
    assert rm_metrics["val/acc"] > 0.75, rm_metrics

    runs = {r.job_type: r for r in find_runs(tmp_path / "outputs")}
    assert set(runs) == {"sft", "rm"}
    assert runs["rm"].summary["val/acc"] == pytest.approx(rm_metrics["val/acc"])
    assert runs["sft"].summary["val/ppl"] == pytest.approx(sft_metrics["val/ppl"])
    assert runs["rm"].config["rm"]["init"] == "sft" and runs["rm"].config["objective"]["name"] == "bt"
    # each stage writes the same metrics to CSV beside W&B
    csv = next((tmp_path / "outputs").rglob("rm/csv/part0/metrics.csv")).read_text().splitlines()
    assert "val/acc" in csv[0]

    proc = run_inform(*args, cwd=tmp_path)
    assert "rm: reusing" in proc.stdout and "sft: reusing" in proc.stdout
    assert len(find_runs(tmp_path / "outputs")) == 2  # nothing trained the second time


def test_local_sweep_beta_by_latent_dim_gives_four_wandb_runs(tmp_path):
    run_inform(
        "-m", "stage=rm", "rm.data=human", "rm.init=base", "objective=ib", "beta=0.1,0.01", "latent_dim=64,128",
        "rm.max_steps=30", "data.preference.n=3000", "rm.val_size=256", cwd=tmp_path,
    )
    runs = [r for r in find_runs(tmp_path / "multirun") if r.job_type == "rm"]
    assert len(runs) == 4
    grid = sorted((r.config["beta"], r.config["latent_dim"]) for r in runs)
    assert grid == [(0.01, 64), (0.01, 128), (0.1, 64), (0.1, 128)]
    assert len({r.group for r in runs}) == 1 and runs[0].group.startswith("default-")
    for r in runs:
        # the objective really used this run's values
        assert r.config["objective"]["loss"]["beta"] == r.config["beta"]
        assert r.config["objective"]["head"]["latent_dim"] == r.config["latent_dim"]
        losses = r.series("train/loss")
        assert len(losses) == 3 and all(math.isfinite(v) for _, v in losses)
        kls = [v for _, v in r.series("rm/kl")]
        assert kls and all(math.isfinite(v) and v > 0 for v in kls)
    assert len(_artifacts(tmp_path, "rm")) == 4


def test_a_data_file_missing_a_column_is_named(tmp_path):
    bad = FIXTURES / "alpaca_farm_missing_column.json"
    proc = run_inform("stage=rm", "rm.data=human", "rm.init=base", "data=alpaca_farm", f"data.preference.path={bad}", cwd=tmp_path, check=False, timeout=300)
    assert proc.returncode != 0
    assert f"{bad}" in proc.stderr and "missing column 'output_2'" in proc.stderr
    assert not _artifacts(tmp_path, "rm")  # nothing half-built is left to trust
