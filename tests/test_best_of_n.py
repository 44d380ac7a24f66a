"""Best-of-n: the unbiased estimator against hand values, full enumeration and brute-force
Monte Carlo; the analytic KL; the `bon` stage through the real entry point."""
import itertools
import json
import math

import pytest
import torch

from inform.config import ConfigError, validate
from inform.rl.best_of_n import best_of_n, bon_curve, bon_kl, bon_weights
from tests.conftest import copy_upstream, run_inform


def test_weights_sum_to_one_and_match_hand_values():
    # N=4, n=2: C(i-1, 1) / C(4, 2) = (0, 1, 2, 3) / 6
    assert torch.allclose(bon_weights(4, 2), torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64) / 6, atol=1e-15)
    # n=1: uniform; n=N: all weight on the top sample
    assert torch.allclose(bon_weights(5, 1), torch.full((5,), 0.2, dtype=torch.float64), atol=1e-15)
    assert bon_weights(5, 5).tolist() == pytest.approx([0, 0, 0, 0, 1], abs=1e-15)
    for N, n in [(1, 1), (6, 3), (16, 8), (100, 37), (4096, 1000)]:
        w = bon_weights(N, n)
        assert w.shape == (N,) and (w >= 0).all()
        assert w.sum().item() == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError):
        bon_weights(4, 5)


def _enumerate(proxy: torch.Tensor, gold: torch.Tensor, n: int) -> tuple[float, float]:
    """The exact best-of-n mean: every n-subset of every prompt's samples, the proxy-best's scores."""
    p_sum, g_sum = 0.0, 0.0
    P, N = proxy.shape
    for p in range(P):
        subsets = list(itertools.combinations(range(N), n))
        for s in subsets:
            best = max(s, key=lambda j: proxy[p, j].item())
            p_sum += proxy[p, best].item() / len(subsets)
            g_sum += gold[p, best].item() / len(subsets)
    return p_sum / P, g_sum / P


def _monte_carlo(proxy: torch.Tensor, gold: torch.Tensor, n: int, draws: int, g: torch.Generator) -> tuple[float, float]:
    """Brute force: draw random n-subsets (without replacement), take the scores at the proxy argmax."""
    P, N = proxy.shape
    subsets = torch.rand(P, draws, N, generator=g, dtype=torch.float64).argsort(-1)[..., :n]  # (P, draws, n)
    prox = torch.gather(proxy.double()[:, None, :].expand(P, draws, N), 2, subsets)  # (P, draws, n)
    gld = torch.gather(gold.double()[:, None, :].expand(P, draws, N), 2, subsets)
    best = prox.argmax(-1, keepdim=True)  # (P, draws, 1)
    return torch.gather(prox, 2, best).mean().item(), torch.gather(gld, 2, best).mean().item()


def test_estimator_matches_enumeration_and_brute_force_monte_carlo():
    g = torch.Generator().manual_seed(0)
    P, N, draws = 3, 6, 200_000
    proxy = torch.randn(P, N, generator=g)
    gold = 0.6 * proxy + 0.8 * torch.randn(P, N, generator=g)  # correlated, not identical
    for n in range(1, N + 1):
        est = best_of_n(proxy, gold, n)
        assert est == pytest.approx(_enumerate(proxy, gold, n), abs=1e-12)
        mc = _monte_carlo(proxy, gold, n, draws, g)
        # the MC standard error is < sd / sqrt(P * draws) ~ 1.5e-3 per score; 5e-3 is > 3 SE
        assert est[0] == pytest.approx(mc[0], abs=5e-3), n
        assert est[1] == pytest.approx(mc[1], abs=5e-3), n


def test_n_1_is_the_mean_and_n_N_is_the_proxy_argmax():
    g = torch.Generator().manual_seed(1)
    proxy, gold = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    p1, g1 = best_of_n(proxy, gold, 1)
    assert (p1, g1) == pytest.approx((proxy.mean().item(), gold.mean().item()), abs=1e-6)
    top = proxy.argmax(-1, keepdim=True)
    pN, gN = best_of_n(proxy, gold, 7)
    assert pN == pytest.approx(proxy.max(-1).values.mean().item(), abs=1e-6)
    assert gN == pytest.approx(torch.gather(gold, 1, top).mean().item(), abs=1e-6)
    # ties in proxy: the stable sort makes the later sample the best
    tied = torch.tensor([[1.0, 1.0]])
    assert best_of_n(tied, torch.tensor([[10.0, 20.0]]), 2) == (1.0, 20.0)


def test_analytic_kl_and_curve_rows():
    assert bon_kl(1) == 0.0
    assert bon_kl(4) == pytest.approx(math.log(4) - 0.75)  # 0.6363
    assert bon_kl(4) == pytest.approx(0.636294, abs=1e-6)
    proxy, gold = torch.randn(2, 4), torch.randn(2, 4)
    rows = bon_curve(proxy, gold, [4, 1, 2])
    assert [r["n"] for r in rows] == [1, 2, 4]
    assert set(rows[0]) == {"n", "bon/kl", "bon/proxy", "bon/gold"}
    # the proxy's best-of-n value cannot fall as n grows
    assert rows[0]["bon/proxy"] <= rows[1]["bon/proxy"] <= rows[2]["bon/proxy"]


def test_config_rejects_an_n_above_n_samples(compose):
    assert validate(compose("stage=bon")).bon.ns == [1, 2, 4, 8, 16]
    with pytest.raises(ConfigError, match=r"^bon[.]ns: "):
        validate(compose("stage=bon", "bon.ns=[1,32]"))
    with pytest.raises(ConfigError, match=r"^bon[.]ns: "):
        validate(compose("bon.ns=[0,2]"))


@pytest.mark.slow
def test_bon_stage_end_to_end(sweep, tmp_path):
    """`python run.py experiment=smoke stage=bon` on (a copy of) the smoke sweep's upstream: samples and writes the curve."""
    copy_upstream(sweep[0], tmp_path)
    proc = run_inform(
        "experiment=smoke", "beta=0.01", "stage=bon", "bon.n_samples=4", "bon.ns=[1,2,4]", "eval.n_prompts=32", "logger=csv",
        f"paths.artifacts={tmp_path}/artifacts", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path,
    )
    (bon,) = sorted(p for p in (tmp_path / "artifacts").glob("bon-*") if p.is_dir())
    result = json.loads((bon / "bon.json").read_text())
    rows = result["rows"]
    assert [r["n"] for r in rows] == [1, 2, 4]
    assert [r["bon/kl"] for r in rows] == pytest.approx([0.0, math.log(2) - 0.5, math.log(4) - 0.75])
    assert all(math.isfinite(r[k]) for r in rows for k in ("bon/proxy", "bon/gold"))
    assert rows[0]["bon/proxy"] < rows[2]["bon/proxy"]  # picking by proxy raises the proxy score
    assert result["config"]["n_prompts"] == 32 and result["config"]["n_samples"] == 4
    assert (bon / "best_of_n.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((bon / "metrics.json").read_text())
    assert metrics["bon/gold@4"] == pytest.approx(rows[2]["bon/gold"])
    csv = next((tmp_path / "run").rglob("bon/csv/part0/metrics.csv")).read_text().splitlines()
    assert "bon/gold" in csv[0] and len(csv) == 4  # header + one row per n
    assert "bon: n=4" in proc.stdout + proc.stderr and "sft: built" not in proc.stdout  # the upstream is reused
