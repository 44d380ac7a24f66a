"""PPO's math against values worked by hand: GAE, the KL-penalized reward, both clipped losses."""
import math

import pytest
import torch

from inform.rl.gae import gae_advantages
from inform.rl.kl import AdaptiveKLController, FixedKLController, kl_penalized_rewards
from inform.rl.losses import policy_loss, value_loss
from inform.rl.masked import explained_variance, masked_mean, masked_var, masked_whiten
from inform.rl.rollout import response_mask_from

D = torch.float64


def t(x):
    return torch.tensor(x, dtype=D)


def test_gae_by_hand():
    # one response of 3 tokens then padding; gamma 0.9, lambda 0.5
    rewards, values, mask = t([[1.0, 0.0, 2.0, 9.0]]), t([[0.5, 1.0, 1.5, 7.0]]), t([[1, 1, 1, 0]])
    adv, ret = gae_advantages(rewards, values, mask, gamma=0.9, lam=0.5)
    d2 = 2.0 + 0.0 - 1.5            # last token: V after it is 0 -> 0.5
    d1 = 0.0 + 0.9 * 1.5 - 1.0      # 0.35
    d0 = 1.0 + 0.9 * 1.0 - 0.5      # 1.4
    a2 = d2
    a1 = d1 + 0.45 * a2             # 0.575
    a0 = d0 + 0.45 * a1             # 1.65875
    assert adv[0].tolist() == pytest.approx([a0, a1, a2, 0.0])
    assert ret[0].tolist() == pytest.approx([a0 + 0.5, a1 + 1.0, a2 + 1.5, 0.0])


def test_gae_with_gamma_1_lambda_1_is_reward_to_go_minus_value():
    rewards, values, mask = t([[0.1, -0.2, 1.0], [0.3, 0.0, 0.0]]), t([[0.2, 0.4, 0.6], [0.1, 5.0, 5.0]]), t([[1, 1, 1], [1, 0, 0]])
    adv, ret = gae_advantages(rewards, values, mask, gamma=1.0, lam=1.0)
    assert ret[0].tolist() == pytest.approx([0.9, 0.8, 1.0])
    assert adv[0].tolist() == pytest.approx([0.7, 0.4, 0.4])
    assert adv[1].tolist() == pytest.approx([0.2, 0.0, 0.0])  # padding never leaks in


def test_kl_penalized_rewards_by_hand():
    logp, ref = t([[-1.0, -2.0, -0.5], [-0.3, -0.1, -4.0]]), t([[-1.5, -1.0, -0.5], [-0.2, -0.4, -1.0]])
    mask, scores = t([[1, 1, 1], [1, 1, 0]]), t([2.0, -1.0])
    rewards, kl = kl_penalized_rewards(logp, ref, scores, mask, kl_coef=0.1)
    # row 0: kl = [0.5, -1, 0]; r = -0.1 kl, + score on token 2
    assert rewards[0].tolist() == pytest.approx([-0.05, 0.1, 2.0])
    # row 1: kl = [-0.1, 0.3, (masked)]; score lands on its last real token (1)
    assert rewards[1].tolist() == pytest.approx([0.01, -0.03 - 1.0, 0.0])
    assert kl.sum(-1).tolist() == pytest.approx([-0.5, 0.2])


def test_policy_loss_by_hand():
    old = t([[0.0, 0.0, 0.0]])
    new = t([[math.log(1.5), math.log(0.5), math.log(1.1)]])  # ratios 1.5, 0.5, 1.1
    adv, mask = t([[1.0, -2.0, 3.0]]), t([[1, 1, 1]])
    loss, stats = policy_loss(new, old, adv, mask, clip=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(1.0, 1.6) = 1.6 (clipped);
    # token 2: max(-3.3, -3.3) = -3.3 (inside the clip range)
    assert loss.item() == pytest.approx((-1.2 + 1.6 - 3.3) / 3)
    assert stats["policy/clipfrac"].item() == pytest.approx(2 / 3)
    assert stats["policy/approxkl"].item() == pytest.approx(0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2 + math.log(1.1) ** 2) / 3)


def test_value_loss_by_hand():
    values, old, returns, mask = t([[1.0, 0.0, 2.0]]), t([[0.5, 0.1, 2.0]]), t([[2.0, 0.0, 0.0]]), t([[1, 1, 0]])
    loss, stats = value_loss(values, old, returns, mask, clip=0.2)
    # token 0: unclipped (1-2)^2 = 1, clipped v = 0.7 -> (0.7-2)^2 = 1.69 -> 1.69
    # token 1: unclipped 0, clipped v = 0.0 (change -0.1 inside) -> 0; token 2 masked
    assert loss.item() == pytest.approx(0.5 * (1.69 + 0.0) / 2)
    assert stats["critic/clipfrac"].item() == pytest.approx(0.5)


def test_masked_statistics():
    x, mask = t([[1.0, 2.0, 100.0], [3.0, 4.0, -50.0]]), t([[1, 1, 0], [1, 1, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.5)
    assert masked_var(x, mask).item() == pytest.approx(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=D).var().item())
    w = masked_whiten(x, mask)
    assert masked_mean(w, mask).item() == pytest.approx(0.0, abs=1e-9) and w[0, 2] == 0
    assert explained_variance(x, x, mask).item() == pytest.approx(1.0)
    assert explained_variance(torch.full_like(x, 2.5), x, mask).item() == pytest.approx(0.0, abs=1e-9)


def test_kl_controllers():
    fixed = FixedKLController(0.05)
    fixed.update(100.0, 64)
    assert fixed.value == 0.05
    ada = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ada.update(12.0, 1000)  # error clipped to +0.2 -> x (1 + 0.2 * 0.1)
    assert ada.value == pytest.approx(0.1 * 1.02)
    ada.update(3.0, 1000)  # error -0.5 clipped to -0.2
    assert ada.value == pytest.approx(0.1 * 1.02 * 0.98)
    again = AdaptiveKLController(1.0, 6.0, 10000)
    again.load_state_dict(ada.state_dict())
    assert again.value == ada.value


def test_response_mask_stops_after_the_first_eos():
    eos = 0
    responses = torch.tensor([[5, 6, 0, 7, 0], [5, 5, 5, 5, 5], [0, 4, 4, 4, 4]])
    mask, has_eos = response_mask_from(responses, eos)
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert has_eos.tolist() == [True, False, True]
