"""What every module shares: AdamW with a linear warm-up, when to log a step, and what to do
with a non-finite loss or reward."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

log = logging.getLogger("inform")
LAST_GOOD = "last_good.ckpt"


class NonFiniteError(RuntimeError):
    """A loss or reward became NaN or infinite (config `on_nonfinite: stop`)."""


def adamw_with_warmup(params, lr: float, weight_decay: float = 0.0, warmup_steps: int = 0, betas=(0.9, 0.95)):
    """Lightning's `configure_optimizers` dict for AdamW and lr * min(1, (step + 1) / warmup)."""
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    warmup = max(1, int(warmup_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def is_logging_step(trainer) -> bool:
    """True on the steps whose on-step metrics the logger will record (every log_every_n_steps).

    Lightning keeps only the latest on-step value between two logger writes, and each
    `self.log` call costs ~0.5 ms on the CPU, so modules log on these steps only: the same
    points reach W&B and the CSV, at a fraction of the cost (benchmarks/rm_step.py).
    """
    return (trainer.global_step + 1) % max(1, trainer.log_every_n_steps) == 0 or trainer.is_last_batch


def on_nonfinite(module, name: str, value: float) -> None:
    """Deal with a non-finite `name` in the current step, per the module's `on_nonfinite`.

    - `stop` (default): save the weights as they are (the last good ones: the bad step has
      not been applied) to `checkpoints/last_good.ckpt` and raise NonFiniteError.
    - `skip`: drop this batch (the caller returns `skipped_batch_loss`, or skips the update) and count it.
    """
    trainer = module.trainer
    what = f"{name} is {value}" if not math.isfinite(value) else "a loss or reward of another rank is non-finite"
    if module.on_nonfinite == "skip":
        module.skipped_nonfinite += 1
        log.warning("%s at step %d: batch skipped (%d so far; on_nonfinite=skip)", what, trainer.global_step, module.skipped_nonfinite)
        return
    path = Path(trainer.default_root_dir) / "checkpoints" / LAST_GOOD
    trainer.save_checkpoint(path, weights_only=False)  # every rank: they all got here (all_finite)
    raise NonFiniteError(
        f"{what} at step {trainer.global_step}: stopped (on_nonfinite=stop). The last good weights are in "
        f"{path}; on_nonfinite=skip drops such batches instead"
    )


def skipped_batch_loss(module) -> torch.Tensor | None:
    """What `training_step` returns for a batch dropped by on_nonfinite=skip (automatic optimization).

    One process: None, and Lightning makes no optimizer step. Several: Lightning refuses None
    under DDP, and every rank must run a backward (the gradients' all-reduce), so this is a
    zero loss over the trainable parameters; `drop_skipped_gradients` then removes the (zero)
    gradients before the step, and AdamW leaves parameters without a gradient untouched (under
    DeepSpeed the engine still steps, on zero gradients)."""
    if module.trainer.world_size == 1:
        return None
    module._drop_gradients = True
    return sum(p.sum() for p in module.parameters() if p.requires_grad) * 0.0


def drop_skipped_gradients(module, optimizer) -> None:
    """`on_before_optimizer_step`: after a skipped batch (see `skipped_batch_loss`), no update."""
    if getattr(module, "_drop_gradients", False):
        optimizer.zero_grad(set_to_none=True)
        module._drop_gradients = False


def finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


def all_finite(module, *tensors: torch.Tensor) -> bool:
    """Whether every tensor is finite on every rank. With several processes the ranks must
    agree (one reduce of a flag): a rank that skipped or stopped alone would leave the others
    waiting in the gradients' all-reduce forever. One process: just the local check."""
    ok = all(finite(t) for t in tensors)
    trainer = getattr(module, "_trainer", None)
    return trainer.strategy.reduce_boolean_decision(ok, all=True) if trainer is not None else ok

