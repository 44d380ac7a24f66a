"""Reward-model training with any objective in `inform.objectives`."""
from __future__ import annotations

import inspect
from typing import Callable

import lightning as L
import torch

from inform.models.reward_model import RewardModel, RewardOutput
from inform.modules.optim import (
    adamw_with_warmup, all_finite, drop_skipped_gradients, is_logging_step, on_nonfinite, skipped_batch_loss,
)


class RewardModule(L.LightningModule):
    """Scores chosen and rejected sequences in one pass and applies `loss_fn`.

    `loss_fn(chosen, rejected) -> (loss, metrics)` is an objective with its hyperparameters
    bound (Hydra `_partial_`). Logs `train/loss`, `train/acc`, `rm/reward_mean`,
    `rm/reward_std` and the objective's own metrics (`rm/kl`, `rm/bsr_penalty`, ...) per
    step; `val/loss` and `val/acc` per validation run (IB heads use s = mu in eval).
    """

    def __init__(
        self, model: RewardModel, loss_fn: Callable, lr: float = 3e-4, weight_decay: float = 0.0, warmup_steps: int = 0,
        on_nonfinite: str = "stop",
    ):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.on_nonfinite, self.skipped_nonfinite = on_nonfinite, 0
        self.wants_gather = "all_gather" in inspect.signature(loss_fn).parameters
        self.save_hyperparameters(ignore=["model", "loss_fn"])

    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        return self.all_gather(t, sync_grads=True).reshape(-1)  # (world * n,)

    def score_pairs(self, batch: dict[str, torch.Tensor]) -> tuple[RewardOutput, RewardOutput]:
        out = self.model(batch["input_ids"], batch["attention_mask"])  # rows: B chosen, then B rejected
        b = out.reward.shape[0] // 2
        return out.rows(slice(0, b)), out.rows(slice(b, None))

    def _step(self, batch) -> tuple[torch.Tensor, dict, RewardOutput, RewardOutput]:
        chosen, rejected = self.score_pairs(batch)
        extra = {}
        if self.wants_gather:
            extra["all_gather"] = self._gather if self.trainer.world_size > 1 else None
        loss, metrics = self.loss_fn(chosen, rejected, **extra)
        return loss, metrics, chosen, rejected

    def training_step(self, batch, batch_idx):
        loss, metrics, chosen, rejected = self._step(batch)
        if not all_finite(self, loss):
            on_nonfinite(self, "train/loss", loss.item())  # raises with on_nonfinite=stop
            if is_logging_step(self.trainer):
                self.log("train/skipped_nonfinite", float(self.skipped_nonfinite))
            return skipped_batch_loss(self)  # no optimizer step for this batch
        if not is_logging_step(self.trainer):
            return loss
        b = chosen.reward.shape[0]
        rewards = torch.cat([chosen.reward, rejected.reward]).detach()
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        self.log("train/acc", (chosen.reward > rejected.reward).float().mean(), batch_size=b)
        self.log("rm/reward_mean", rewards.mean(), batch_size=b)
        self.log("rm/reward_std", rewards.std(), batch_size=b)
        self.log_dict(metrics, batch_size=b)
        if self.skipped_nonfinite:
            self.log("train/skipped_nonfinite", float(self.skipped_nonfinite))
        return loss

    def validation_step(self, batch, batch_idx):
        loss, _, chosen, rejected = self._step(batch)
        b = chosen.reward.shape[0]
        self.log("val/loss", loss, prog_bar=True, batch_size=b, sync_dist=True)
        self.log("val/acc", (chosen.reward > rejected.reward).float().mean(), prog_bar=True, batch_size=b, sync_dist=True)

    def on_before_optimizer_step(self, optimizer):
        drop_skipped_gradients(self, optimizer)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_with_warmup(self.model.parameters(), hp.lr, hp.weight_decay, hp.warmup_steps)
