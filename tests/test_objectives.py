"""Each reward-model loss against numbers worked by hand."""
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inform.models.reward_model import RewardOutput
from inform.objectives import bsr_loss, bt_loss, gaussian_kl, hinge_loss, ib_loss, margin_bt_loss


def out(rewards, mu=None, logvar=None):
    r = torch.tensor(rewards, dtype=torch.float64)
    return RewardOutput(reward=r, hidden=torch.zeros(len(rewards), 2, dtype=torch.float64), mu=mu, logvar=logvar)


def nls(x):  # -log sigmoid(x), by hand
    return math.log(1 + math.exp(-x))


def test_bt_loss_two_pairs():
    loss, metrics = bt_loss(out([1.0, 0.5]), out([0.0, 1.5]))
    # pair 1: margin 1 -> log(1+e^-1) = 0.313262; pair 2: margin -1 -> log(1+e) = 1.313262
    assert loss.item() == pytest.approx((0.3132617 + 1.3132617) / 2, abs=1e-6)
    assert metrics["rm/pref_loss"].item() == pytest.approx(loss.item())


def test_margin_bt_two_pairs_and_zero_margin_is_bt():
    loss, metrics = margin_bt_loss(out([1.0, 0.5]), out([0.0, 1.5]), margin=1.0)
    # differences 1 and -1, minus the margin 1: -log sigmoid(0) = log 2, -log sigmoid(-2) = log(1 + e^2)
    assert loss.item() == pytest.approx((math.log(2) + math.log(1 + math.e**2)) / 2, abs=1e-9)
    assert metrics["rm/margin_frac"].item() == 0.0  # neither pair beats the margin strictly
    assert margin_bt_loss(out([1.0, 0.5]), out([0.0, 1.5]), margin=0.0)[0].item() == pytest.approx(bt_loss(out([1.0, 0.5]), out([0.0, 1.5]))[0].item())


def test_hinge_two_pairs():
    loss, metrics = hinge_loss(out([3.0, 0.5, 1.0]), out([0.0, 1.5, 0.75]), margin=1.0)
    # differences 3, -1, 0.25 -> max(0, 1 - d) = 0, 2, 0.75
    assert loss.item() == pytest.approx((0 + 2 + 0.75) / 3, abs=1e-12)
    assert metrics["rm/margin_frac"].item() == pytest.approx(1 / 3)


def test_gaussian_kl_closed_form():
    mu = torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 0.0], [math.log(4.0), 0.0]], dtype=torch.float64)
    kl = gaussian_kl(mu, logvar)
    # row 1 is the prior itself: 0. Row 2: 0.5*[(1 + 4 - ln4 - 1) + (4 + 1 - 0 - 1)] = 0.5*(8 - ln4)
    assert kl[0].item() == pytest.approx(0.0, abs=1e-12)
    assert kl[1].item() == pytest.approx(0.5 * (8 - math.log(4.0)), abs=1e-12)
    # against torch.distributions on random values
    mu, logvar = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p).sum(-1))


def test_ib_loss_two_pairs():
    z = torch.zeros(2, 2, dtype=torch.float64)
    mu_w = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)  # KL_w = [0.5, 0]
    mu_l = torch.tensor([[0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)  # KL_l = [2.0, 1.0]
    chosen, rejected = out([1.0, 0.5], mu_w, z), out([0.0, 1.5], mu_l, z)
    loss, m = ib_loss(chosen, rejected, beta=0.1)
    pref = (nls(1.0) + nls(-1.0)) / 2
    penalty = 0.1 * ((0.5 + 2.0) + (0.0 + 1.0)) / 2
    assert loss.item() == pytest.approx(pref + penalty, abs=1e-9)
    assert m["rm/pref_loss"].item() == pytest.approx(pref, abs=1e-9)
    assert m["rm/ib_penalty"].item() == pytest.approx(penalty, abs=1e-9)
    assert m["rm/kl"].item() == pytest.approx((0.5 + 2.0 + 0.0 + 1.0) / 4, abs=1e-9)


def test_ib_loss_needs_ib_head():
    with pytest.raises(ValueError, match="IB head"):
        ib_loss(out([1.0]), out([0.0]))


def test_bsr_is_bt_plus_lambda_over_4b_sum_squared():
    chosen, rejected = out([1.0, 0.5, 2.0]), out([0.0, 1.5, -0.5])
    lam, b = 0.01, 3
    total = 1.0 + 0.5 + 2.0 + 0.0 + 1.5 - 0.5  # 4.5
    loss, m = bsr_loss(chosen, rejected, bsr_lambda=lam)
    bt, _ = bt_loss(chosen, rejected)
    assert m["rm/bsr_penalty"].item() == pytest.approx(lam / (4 * b) * total**2, abs=1e-12)  # 0.016875
    assert loss.item() == pytest.approx(bt.item() + lam / (4 * b) * total**2, abs=1e-12)


def test_bsr_over_the_global_batch_on_two_processes(tmp_path):
    """Two real gloo processes (Lightning Fabric, DDP) match one process on the whole batch."""
    script = Path(__file__).parent / "helpers" / "bsr_ddp.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(tmp_path / "ddp.pt")
    want = torch.load(tmp_path / "single.pt")
    assert torch.allclose(got["loss"], want["loss"], atol=1e-6)
    assert torch.allclose(got["penalty"], want["penalty"], atol=1e-7)
    assert torch.allclose(got["grad"], want["grad"], atol=1e-6)
    # and the per-device penalty (what the BSR authors' code does) would differ
    assert not torch.allclose(got["local_penalty"], want["penalty"], atol=1e-4)
