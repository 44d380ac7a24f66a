"""Supervised fine-tuning: causal-LM loss on response tokens only."""
from __future__ import annotations

import math

import lightning as L
import torch

from inform.modules.optim import (
    adamw_with_warmup, all_finite, drop_skipped_gradients, is_logging_step, on_nonfinite, skipped_batch_loss,
)


class SFTModule(L.LightningModule):
    """L = -(1/N) sum over response tokens t of log pi(y_t | x, y_<t); prompt and pad masked.

    Logs `train/loss`, and per validation run `val/loss` (token-weighted) and `val/ppl`.
    """

    def __init__(self, model, lr: float = 1e-3, weight_decay: float = 0.0, warmup_steps: int = 0, on_nonfinite: str = "stop"):
        super().__init__()
        self.model = model
        self.on_nonfinite, self.skipped_nonfinite = on_nonfinite, 0
        self.save_hyperparameters(ignore=["model"])
        self._val_nll = self._val_tokens = 0.0

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        # input_ids, attention_mask, labels: (B, T); HF shifts labels by one inside.
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        n_tokens = int((batch["labels"][:, 1:] != -100).sum())
        return out.loss, n_tokens

    def training_step(self, batch, batch_idx):
        loss, n = self._loss(batch)
        if not all_finite(self, loss):
            on_nonfinite(self, "train/loss", loss.item())  # raises with on_nonfinite=stop
            if is_logging_step(self.trainer):
                self.log("train/skipped_nonfinite", float(self.skipped_nonfinite))
            return skipped_batch_loss(self)  # no optimizer step for this batch
        if is_logging_step(self.trainer):
            self.log("train/loss", loss, prog_bar=True, batch_size=n)
            if self.skipped_nonfinite:
                self.log("train/skipped_nonfinite", float(self.skipped_nonfinite))
        return loss

    def on_validation_epoch_start(self):
        self._val_nll = self._val_tokens = 0.0

    def validation_step(self, batch, batch_idx):
        loss, n = self._loss(batch)
        self._val_nll += float(loss) * n
        self._val_tokens += n

    def on_validation_epoch_end(self):
        nll = self._val_nll / max(self._val_tokens, 1)
        self.log("val/loss", nll, prog_bar=True, sync_dist=True)
        self.log("val/ppl", math.exp(min(nll, 50.0)), sync_dist=True)

    def on_before_optimizer_step(self, optimizer):
        drop_skipped_gradients(self, optimizer)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_with_warmup(self.model.parameters(), hp.lr, hp.weight_decay, hp.warmup_steps)
