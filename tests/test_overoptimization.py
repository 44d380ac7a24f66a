"""The science the default pipeline exists to show: with a Bradley-Terry proxy trained on 25%
noisy gold labels, PPO keeps raising the proxy reward while the gold reward peaks and falls."""
import json

import pytest

from inform.tracking.csv_metrics import read_csv_metrics, series
from tests.conftest import run_inform

pytestmark = pytest.mark.slow


def test_default_bt_pipeline_over_optimizes(tmp_path):
    run_inform("objective=bt", "label_noise=0.25", "logger=csv", cwd=tmp_path)
    (ppo,) = [p for p in (tmp_path / "artifacts").glob("ppo-*") if p.is_dir()]
    history = json.loads((ppo / "eval_history.json").read_text())["history"]
    gold = [h["reward/gold"] for h in history]
    proxy = [h["reward/proxy_eval"] for h in history]
    true = [h["reward/true"] for h in history]
    peak = max(range(len(gold)), key=gold.__getitem__)
    assert 0 < peak < len(history) - 5, gold                    # an interior peak, well before the end
    assert gold[peak] > gold[0] + 0.3                            # PPO first helps...
    assert gold[-1] < gold[peak] - 0.5 and gold[-1] < gold[0]    # ...then hurts, below the SFT policy
    assert proxy[-1] > proxy[peak] + 0.5 and proxy[-1] == pytest.approx(max(proxy), abs=0.1)  # proxy still rising
    assert true[-1] < true[peak] - 0.2                           # the exact quality agrees with gold
    assert (ppo / "overoptimization.png").stat().st_size > 10_000
    # a scalar (BT) reward model gets a CSI too, from its last hidden state, at every eval step
    csi = [h["csi/value"] for h in history]
    assert len(csi) == len(history) and all(v > 0 for v in csi)
    logged = series(read_csv_metrics(next((tmp_path / "outputs").rglob("ppo/csv"))), "csi/value")
    assert [s for s, _ in logged] == [h["step"] for h in history] and [v for _, v in logged] == pytest.approx(csi)
