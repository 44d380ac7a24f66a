"""PPO's clipped losses (Schulman et al. 2017), as in cleanrl's ppo.py and TRL."""
from __future__ import annotations

import torch

from inform.rl.masked import masked_mean


def policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_pi = mean_t max(-A_t * rho_t, -A_t * clip(rho_t, 1 - eps, 1 + eps)),  rho_t = pi / pi_old.

    Args: all (b, response_len); `mask` 1 on response tokens; `clip` = eps.
    Returns: the loss and `policy/clipfrac` (share of tokens where the clip is active),
    `policy/approxkl` (0.5 * mean (log rho)^2, an estimate of KL(pi_old || pi)).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "policy/clipfrac": masked_mean((clipped > unclipped).float(), mask),
            "policy/approxkl": 0.5 * masked_mean(log_ratio**2, mask),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float = 0.2
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_V = 0.5 * mean_t max((V_t - R_t)^2, (V_old,t + clip(V_t - V_old,t, -eps, eps) - R_t)^2).

    Args: all (b, response_len); `clip` = eps for the value clip.
    Returns: the loss and `critic/clipfrac`.
    """
    v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    err, err_clipped = (values - returns) ** 2, (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(err, err_clipped), mask)
    with torch.no_grad():
        stats = {"critic/clipfrac": masked_mean((err_clipped > err).float(), mask)}
    return loss, stats
