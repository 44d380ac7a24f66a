"""Reward-side mitigations of over-optimization (the InfoRM authors' IBL and EPPO work).

Applied to each sequence's standardized RM score, before clipping:

    IBL:   r' = r - ibl_coef * D(z)                       D: Mahalanobis distance of the IB latent
                                                          to the SFT latents' Gaussian
    EPPO:  r' = r - energy_coef * |E_policy(x, y) - E_sft(x, y_sft)|
                                                          E: the last MLP's energy (detect/energy.py)
A coefficient of 0 leaves the score untouched, bit for bit (the term is not even computed).
"""
from __future__ import annotations

import torch


def mitigated_scores(
    scores: torch.Tensor,
    ibl_coef: float = 0.0,
    distances: torch.Tensor | None = None,
    energy_coef: float = 0.0,
    energy_policy: torch.Tensor | None = None,
    energy_sft: torch.Tensor | None = None,
) -> torch.Tensor:
    """(b,) scores minus the IBL and EPPO penalties; all inputs (b,)."""
    if ibl_coef:
        scores = scores - ibl_coef * distances.to(scores)
    if energy_coef:
        scores = scores - energy_coef * (energy_policy.to(scores) - energy_sft.to(scores)).abs()
    return scores
