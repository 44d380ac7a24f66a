"""Where a run writes (its folder, one subfolder per stage) and how a stage is seeded."""
from __future__ import annotations

import time
import zlib
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from inform.runtime.files import make_dir


def hydra_config():
    """Hydra's runtime config when run.py started under Hydra, else None (a test, a notebook)."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def job_dir(cfg: DictConfig) -> Path:
    """This run's folder: `paths.output_dir`, else Hydra's, else outputs/<time>."""
    hc = hydra_config()
    base = cfg.paths.output_dir or (hc.runtime.output_dir if hc else f"outputs/{time.strftime('%Y-%m-%d/%H-%M-%S')}")
    return Path(base)


def stage_dir(cfg: DictConfig, stage: str) -> Path:
    """`<run folder>/<stage>/`: the stage's logs, W&B run, checkpoints and plots."""
    return make_dir(job_dir(cfg) / stage, "paths.output_dir (the run folder: logs, W&B, checkpoints)")


def seed_stage(cfg: DictConfig, stage: str) -> None:
    """Seed every RNG from (seed, stage), so a stage trains the same whether or not the
    stages before it ran in this process or came from the cache."""
    L.seed_everything(cfg.seed * 1000 + zlib.crc32(stage.encode()) % 1000, workers=True, verbose=False)
