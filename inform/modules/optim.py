"""What every module shares: AdamW with a linear warm-up, and when to log a step."""
from __future__ import annotations

import torch


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
