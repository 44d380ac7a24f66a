"""Reward-model ensembles (Coste et al. 2024) and weight averaging (WARM, Rame et al. 2024).

An ensemble of k reward models scores each response k times; with every member's score
standardized on its own training samples (z_j, see models/scorer.py) the proxy reward is

    mean:  R = (1/k) sum_j z_j
    min:   R = min_j z_j                                 (worst-case optimization, WCO)
    uwo:   R = (1/k) sum_j z_j - lambda * Var_j(z_j)     (uncertainty-weighted, UWO;
                                                           Var the population variance over
                                                           the k members, lambda 0.1 for PPO)

WARM instead averages the k members' *weights* into one model, theta = (1/k) sum_j theta_j,
which works when the members were fine-tuned from one initialization (same backbone and
head init, different data orders), so they lie in one linearly connected basin.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from inform.models.reward_model import RewardModel, RewardOutput
from inform.models.scorer import RewardScorer

COMBINE = ("mean", "min", "uwo")


def aggregate(scores: torch.Tensor, combine: str, uwo_lambda: float = 0.1) -> torch.Tensor:
    """(k, b) member scores -> (b,) ensemble reward, as in the module docstring."""
    if combine == "mean":
        return scores.mean(0)
    if combine == "min":
        return scores.min(0).values
    if combine == "uwo":
        return scores.mean(0) - uwo_lambda * scores.var(0, unbiased=False)
    raise ValueError(f"ensemble.combine: {combine!r} is not one of {', '.join(COMBINE)} (or warm)")


@torch.no_grad()
def average_weights(models: list[RewardModel]) -> RewardModel:
    """WARM: one reward model whose every parameter and buffer is the mean of the members'."""
    if not models:
        raise ValueError("average_weights needs at least one model")
    states = [m.state_dict() for m in models]
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != keys or any(s[k].shape != states[0][k].shape for k in keys):
            raise ValueError(f"WARM: member {i} has another architecture than member 0; weights cannot be averaged")
    merged = copy.deepcopy(models[0])
    avg = {k: torch.stack([s[k].float() for s in states]).mean(0).to(states[0][k].dtype) if states[0][k].is_floating_point()
           else states[0][k] for k in keys}
    merged.load_state_dict(avg)
    return merged


class EnsembleScorer:
    """k frozen reward models as one proxy: `raw` gives the aggregated standardized score
    (so its own mean/std are 0/1) and member 0's latent (what CSI and the detectors read)."""

    def __init__(self, members: list[RewardScorer], combine: str = "mean", uwo_lambda: float = 0.1, missing_eos_penalty: float = 0.0):
        aggregate(torch.zeros(len(members), 1), combine, uwo_lambda)  # a bad name fails here
        self.members, self.combine, self.uwo_lambda = members, combine, uwo_lambda
        self.model = nn.ModuleList([m.model for m in members])  # registered by the RL modules (moves with them)
        self.mean, self.std, self.missing_eos_penalty = 0.0, 1.0, missing_eos_penalty

    def to(self, device) -> "EnsembleScorer":
        self.model.to(device)
        return self

    @torch.no_grad()
    def raw(self, sequences: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int) -> RewardOutput:
        outs = [m.raw(sequences, attention_mask, prompt_len) for m in self.members]
        z = torch.stack([(o.reward.float() - m.mean) / m.std for o, m in zip(outs, self.members)])  # (k, b)
        first = outs[0]
        return RewardOutput(aggregate(z, self.combine, self.uwo_lambda), first.hidden, first.mu, first.logvar)

    def normalize(self, raw_reward: torch.Tensor, has_eos: torch.Tensor) -> torch.Tensor:
        """(b,) the aggregate (already standardized), minus the missing-EOS penalty."""
        return raw_reward - self.missing_eos_penalty * (~has_eos).to(raw_reward.dtype)
