"""Bradley-Terry reward-model loss (seed 001, eq. 2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from inform.models.reward_model import RewardOutput


def bt_loss(chosen: RewardOutput, rejected: RewardOutput) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = mean_i -log sigmoid(r_w,i - r_l,i).

    Args:
        chosen:   rewards r_w of the preferred responses, `reward` (B,)
        rejected: rewards r_l of the other responses, `reward` (B,)
    Returns:
        the scalar loss and metrics (`rm/pref_loss`).
    """
    pref = -F.logsigmoid(chosen.reward - rejected.reward).mean()
    return pref, {"rm/pref_loss": pref.detach()}
