"""InfoRM's variational information-bottleneck loss (seed 001, sec. 3.2, eq. 25)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from inform.models.reward_model import RewardOutput


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL[N(mu, diag(sigma^2)) || N(0, I)] = 0.5 * sum_d (mu_d^2 + sigma_d^2 - log sigma_d^2 - 1).

    Args: mu, logvar (B, D).  Returns: (B,), summed over the D latent dimensions.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=-1)


def ib_loss(chosen: RewardOutput, rejected: RewardOutput, beta: float = 0.1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = mean_i [ -log sigmoid(r_w,i - r_l,i) + beta * (KL_w,i + KL_l,i) ].

    The preference term is J_preference of eq. 25 (rewards decoded from sampled latents s);
    the bottleneck term is beta times the KL of each response's posterior p_phi(S | x) to the
    prior r(S) = N(0, I), summed over latent dims, for the chosen and the rejected response.

    Args:
        chosen, rejected: `reward` (B,), `mu` and `logvar` (B, D) from the IB head.
        beta: the IB trade-off (paper: 0.1 best; grid {0.1, 0.01, 0.001}).
    Returns:
        the scalar loss, and metrics: `rm/pref_loss`, `rm/ib_penalty` (beta * mean KL_w + KL_l),
        `rm/kl` (mean KL of one response's posterior).
    """
    if chosen.mu is None or rejected.mu is None:
        raise ValueError("ib_loss needs the IB head (objective.head.kind: ib)")
    pref = -F.logsigmoid(chosen.reward - rejected.reward)  # (B,)
    kl_w, kl_l = gaussian_kl(chosen.mu, chosen.logvar), gaussian_kl(rejected.mu, rejected.logvar)  # (B,)
    penalty = beta * (kl_w + kl_l)  # (B,)
    loss = (pref + penalty).mean()
    metrics = {
        "rm/pref_loss": pref.mean().detach(),
        "rm/ib_penalty": penalty.mean().detach(),
        "rm/kl": 0.5 * (kl_w + kl_l).mean().detach(),
    }
    return loss, metrics
