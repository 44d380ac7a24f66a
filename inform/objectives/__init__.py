"""Reward-model objectives: pure functions (chosen, rejected, **hparams) -> (loss, metrics).

Add one by writing a function here and a yaml file in conf/objective/ that points at it.
An objective that needs the global batch across devices takes an `all_gather` argument;
the reward module passes a differentiable all-gather to it (see `bsr_loss`).
"""
from inform.objectives.bsr import bsr_loss
from inform.objectives.bt import bt_loss
from inform.objectives.ib import gaussian_kl, ib_loss
from inform.objectives.margin import hinge_loss, margin_bt_loss

__all__ = ["bt_loss", "ib_loss", "bsr_loss", "margin_bt_loss", "hinge_loss", "gaussian_kl"]
