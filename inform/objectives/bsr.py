"""Batch-wise sum-to-zero regularization, BSR (seed 002)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from inform.models.reward_model import RewardOutput


def bsr_loss(
    chosen: RewardOutput,
    rejected: RewardOutput,
    bsr_lambda: float = 1e-3,
    all_gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = mean_i -log sigmoid(r_w,i - r_l,i) + lambda * B * (mean of all 2B rewards)^2.

    The penalty equals (lambda / 4B) * (sum of all 2B rewards)^2: it pulls each batch's reward
    sum to zero and so bounds extreme rewards. B is the *global* number of pairs: under DDP
    `all_gather` (differentiable; given by the Lightning module) collects every device's
    rewards, so the constraint does not change with the number of GPUs. (The BSR authors'
    code uses each device's batch only.) With the penalty computed on every rank from the
    same global rewards and DDP's gradient averaging, the gradient is that of one big batch.

    Args:
        chosen, rejected: `reward` (B,) each.
        bsr_lambda: lambda (paper default 1e-3).
        all_gather: (n,) -> (world * n,) with gradients; None on one device.
    Returns:
        the scalar loss, and metrics `rm/pref_loss`, `rm/bsr_penalty`.
    """
    pref = -F.logsigmoid(chosen.reward - rejected.reward).mean()
    rewards = torch.cat([chosen.reward, rejected.reward])  # (2B,)
    if all_gather is not None:
        rewards = all_gather(rewards).reshape(-1)  # (world * 2B,)
    n_pairs = rewards.numel() // 2
    penalty = bsr_lambda * n_pairs * rewards.mean().pow(2)
    return pref + penalty, {"rm/pref_loss": pref.detach(), "rm/bsr_penalty": penalty.detach()}
