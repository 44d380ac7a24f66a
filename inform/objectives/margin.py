"""Bradley-Terry with a margin, and the hinge (ranking) loss: the margin variants of plain BT.

Both ask the chosen reward to beat the rejected one by at least m:
    margin BT (Llama 2's RM loss, constant margin):  L = mean_i -log sigmoid(r_w,i - r_l,i - m)
    hinge:                                            L = mean_i max(0, m - (r_w,i - r_l,i))
With m = 0 margin BT is plain BT; the hinge loss stops pushing a pair once it is separated by
m, so it bounds how far rewards are driven apart (one of the simple guards against extreme
rewards, like BSR's sum-to-zero penalty).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from inform.models.reward_model import RewardOutput


def margin_bt_loss(chosen: RewardOutput, rejected: RewardOutput, margin: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = mean_i -log sigmoid(r_w,i - r_l,i - m).  chosen, rejected: `reward` (B,)."""
    diff = chosen.reward - rejected.reward  # (B,)
    loss = -F.logsigmoid(diff - margin).mean()
    return loss, {"rm/pref_loss": loss.detach(), "rm/margin_frac": (diff > margin).float().mean().detach()}


def hinge_loss(chosen: RewardOutput, rejected: RewardOutput, margin: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = mean_i max(0, m - (r_w,i - r_l,i)).  chosen, rejected: `reward` (B,)."""
    diff = chosen.reward - rejected.reward  # (B,)
    loss = F.relu(margin - diff).mean()
    return loss, {"rm/pref_loss": loss.detach(), "rm/margin_frac": (diff > margin).float().mean().detach()}
