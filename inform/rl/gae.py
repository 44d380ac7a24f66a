"""Generalized advantage estimation (Schulman et al. 2016) over response tokens."""
from __future__ import annotations

import torch


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns, computed backwards over each response.

        delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)          (V = 0 after the last real token)
        A_t     = delta_t + gamma * lam * A_{t+1}
        R_t     = A_t + V(s_t)                                (the critic's target)

    Args:
        rewards: (b, response_len) per-token rewards (KL penalty; the score on the last token)
        values:  (b, response_len) critic values V(s_t) from the rollout
        mask:    (b, response_len) 1 on response tokens; responses are left-aligned, so the
                 tokens after the first 0 are padding
    Returns:
        advantages, returns: (b, response_len), zero on padding.
    Follows TRL's `PPOTrainer` / torchtune `estimate_advantages`.
    """
    mask = mask.to(values.dtype)
    values, rewards = values * mask, rewards * mask
    b, t_len = rewards.shape
    adv = torch.zeros_like(rewards)
    last = torch.zeros(b, dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(t_len)):
        next_v = values[:, t + 1] if t + 1 < t_len else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        adv[:, t] = last
    return adv, (adv + values) * mask
