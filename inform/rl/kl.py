"""The KL penalty in the per-token reward, and its coefficient's controllers."""
from __future__ import annotations

import math

import torch


def kl_penalized_rewards(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token reward r_t = -kl_coef * (log pi(y_t) - log pi_ref(y_t)), plus the score on the last token.

    Args:
        logprobs, ref_logprobs: (b, response_len) log-probs of the sampled tokens
        scores: (b,) the (normalized, clipped) reward-model score of each sequence
        mask: (b, response_len) 1 on response tokens (left-aligned)
    Returns:
        rewards (b, response_len) and the per-token KL estimate k1 = log pi - log pi_ref.
    As in Ziegler et al. (2019) and TRL: the KL is a per-token reward, the score a terminal one.
    """
    mask = mask.to(logprobs.dtype)
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # (b,) index of the last response token
    rewards[torch.arange(rewards.shape[0], device=rewards.device), last] += scores.to(rewards.dtype)
    return rewards * mask, kl


class FixedKLController:
    """kl_coef stays at its initial value."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


class AdaptiveKLController:
    """Ziegler et al. (2019): beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon)."""

    def __init__(self, kl_coef: float, target: float, horizon: int):
        self.value, self.target, self.horizon = kl_coef, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        if not math.isfinite(current_kl):
            return
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]
