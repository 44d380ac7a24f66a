"""REINFORCE Leave-One-Out (RLOO; Kool et al. 2019, Ahmadian et al. 2024): the advantage.

k responses y_1..y_k are sampled for each prompt x. Each gets a sequence-level reward

    R_i = s(x, y_i) - kl_coef * sum_t [log pi(y_i,t | ...) - log pi_ref(y_i,t | ...)]

and its baseline is the mean reward of the *other* k - 1 responses to the same prompt:

    b_i = (1 / (k - 1)) * sum_{j != i} R_j,        A_i = R_i - b_i = (k / (k - 1)) * (R_i - mean_j R_j)

An unbiased baseline without a critic: no value network, one model less than PPO.
"""
from __future__ import annotations

import torch


def rloo_advantages(rewards: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Leave-one-out baselines and advantages.

    Args:
        rewards: (b * k,) sequence rewards, the k samples of each prompt adjacent
            (prompt 0's k samples, then prompt 1's, ...: `repeat_interleave` order).
        k: samples per prompt (>= 2).
    Returns:
        baselines b_i and advantages A_i = R_i - b_i, both (b * k,).
    """
    if k < 2:
        raise ValueError(f"RLOO needs k >= 2 samples per prompt (got {k})")
    if rewards.numel() % k:
        raise ValueError(f"{rewards.numel()} rewards are not a whole number of groups of k = {k}")
    grouped = rewards.reshape(-1, k)  # (b, k)
    baselines = (grouped.sum(-1, keepdim=True) - grouped) / (k - 1)  # (b, k)
    return baselines.reshape(-1), (grouped - baselines).reshape(-1)
