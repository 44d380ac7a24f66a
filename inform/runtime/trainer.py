"""The Lightning Trainer of a trained stage, its data loaders, resuming, and the dtype and
device a stage's models use."""
from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import (
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DeepSpeedStrategy
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from inform.data.collate import ResumableSampler
from inform.runtime import ranks
from inform.runtime.preempt import (
    PreemptCheckpoint,
    check_resume_checkpoint,
    under_slurm,
)

PREEMPT_CKPT = "preempt.ckpt"

log = logging.getLogger("inform")


def deepspeed_stage(cfg) -> int | None:
    """The ZeRO stage when the trainer config uses a DeepSpeed strategy, else None."""
    strategy = cfg.trainer.get("strategy")
    if isinstance(strategy, Mapping) and "DeepSpeed" in str(strategy.get("_target_", "")):
        return int(strategy.get("stage", 2))
    return None


def stage_device(cfg: DictConfig) -> torch.device:
    """Where the stages that run outside a Trainer (label, sft_stats) put their models."""
    wants_gpu = str(cfg.trainer.get("accelerator", "cpu")) in ("gpu", "cuda", "auto")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")



def trainable_dtype(cfg: DictConfig, model_cfg: DictConfig) -> str:
    """The dtype to load a model that this stage trains.

    The presets' dtype (bfloat16 for Pythia and Vicuna) is right for inference, so frozen
    models (reference, proxy and gold RMs) load in it. A trained model loads in float32 under
    a `*-mixed` or `32-true` trainer: autocast computes in bf16 while AdamW updates fp32
    weights (in bf16 weights an update below ~0.2-0.4% of the weight rounds away). DeepSpeed keeps
    fp32 master weights in its own optimizer, and `bf16-true` asks for bf16 weights: there
    the preset's dtype stays."""
    if deepspeed_stage(cfg) is not None or str(cfg.trainer.get("precision")) in ("bf16-true", "16-true"):
        return model_cfg.dtype
    return "float32"



def make_loader(rows, batch_size: int | None, collate, shuffle: bool, seed: int) -> DataLoader:
    """A DataLoader whose position in an epoch survives preemption (`ResumableSampler`)."""
    sampler = ResumableSampler(len(rows), shuffle=shuffle, seed=seed, batch_size=batch_size or 1)
    # its own generator: creating an iterator draws a seed from it, not from the global RNG
    # (a resumed run restores the global RNG first, and must not see it shifted)
    g = torch.Generator().manual_seed(seed)
    return DataLoader(rows, batch_size=batch_size, sampler=sampler, collate_fn=collate, generator=g)



def make_trainer(
    cfg: DictConfig, stage: str, save_dir: Path, loggers: list, callbacks: list | None = None,
    train_loader: DataLoader | None = None, fingerprint: str = "", **limits,
) -> L.Trainer:
    """The configured Lightning Trainer with this stage's limits, loggers, a last-checkpoint
    and the preemption checkpoint (which restores the train loader's position)."""
    ckpt = ModelCheckpoint(dirpath=save_dir / "checkpoints", save_last=True)
    samplers = [train_loader.sampler] if train_loader is not None and isinstance(train_loader.sampler, ResumableSampler) else []
    preempt_cb = PreemptCheckpoint(save_dir / "checkpoints" / PREEMPT_CKPT, samplers, fingerprint)
    if ranks.world_size() > 1:  # torchrun's processes (also inside a Slurm job, which Lightning would pick instead)
        extra = {"plugins": [TorchElasticEnvironment()]}
    else:
        extra = {"plugins": [SLURMEnvironment(auto_requeue=False)]} if under_slurm() else {}
    return instantiate(
        cfg.trainer, logger=loggers or False, callbacks=[ckpt, preempt_cb, *(callbacks or [])],
        default_root_dir=str(save_dir), use_distributed_sampler=False,  # ResumableSampler splits the data itself
        **extra, **limits,
    )



def fit(trainer: L.Trainer, module: L.LightningModule, save_dir: Path, train_loader, val_loader=None) -> None:
    """trainer.fit, resumed from the stage's preemption checkpoint when a requeued job left one."""
    ckpt = save_dir / "checkpoints" / PREEMPT_CKPT  # a file; a folder under DeepSpeed
    if ckpt.exists():
        preempt_cb = next(cb for cb in trainer.callbacks if isinstance(cb, PreemptCheckpoint))
        check_resume_checkpoint(ckpt, preempt_cb.fingerprint)
        log.info("%s: resuming from %s", save_dir.name, ckpt)
    with warnings.catch_warnings():
        # the train loader's ResumableSampler restores the position, which Lightning cannot see
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
        trainer.fit(module, train_loader, val_loader, ckpt_path=str(ckpt) if ckpt.exists() else None, weights_only=True)



class FullWeights(L.Callback):
    """The full weights of `pl_module.<attr>` for the export, also under DeepSpeed ZeRO-3.

    ZeRO-3 keeps a shard of every parameter on each rank, and Lightning's teardown moves the
    shards to the CPU: so at the end of training, before the teardown, this gathers the full
    state dict to the CPU (`state`; every rank gets it). Without ZeRO-3 `state` stays None:
    the model holds its full weights and `save_pretrained(state_dict=None)` reads them."""

    def __init__(self, attr: str):
        self.attr, self.state = attr, None

    def on_train_end(self, trainer, pl_module):
        strategy = trainer.strategy
        if isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3:
            import deepspeed

            model = getattr(pl_module, self.attr)
            with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
                self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}



def metrics_of(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items()}
