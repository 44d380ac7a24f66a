"""Faults planted through the real config, for the reliability tests."""
import os

import torch

from inform.objectives import bt_loss

_calls = {"n": 0}


def nan_loss_after(chosen, rejected, after: int = 5, n_bad: int = 3, rank: int | None = None):
    """Bradley-Terry, except that calls number after .. after + n_bad - 1 (0-based) return NaN
    (with `rank`: on that rank of a multi-process run only)."""
    loss, metrics = bt_loss(chosen, rejected)
    _calls["n"] += 1
    if after < _calls["n"] <= after + n_bad and rank in (None, int(os.environ.get("RANK", "0"))):
        loss = loss * torch.tensor(float("nan"))
    return loss, metrics
