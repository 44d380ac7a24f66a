"""What every stage shares: its run folder, loggers, trainer and data rows."""
from __future__ import annotations

import logging
import time
import zlib
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from inform.pipeline.cache import plain

log = logging.getLogger("inform")


def _hydra():
    return HydraConfig.get() if HydraConfig.initialized() else None


def job_dir(cfg: DictConfig) -> Path:
    """This run's folder: `paths.output_dir`, else Hydra's, else outputs/<time>."""
    hc = _hydra()
    base = cfg.paths.output_dir or (hc.runtime.output_dir if hc else f"outputs/{time.strftime('%Y-%m-%d/%H-%M-%S')}")
    return Path(base)


def stage_dir(cfg: DictConfig, stage: str) -> Path:
    d = job_dir(cfg) / stage
    d.mkdir(parents=True, exist_ok=True)
    return d


def sweep_group(cfg: DictConfig) -> str:
    """The W&B group: the sweep folder's name under `-m`, else the experiment name."""
    hc = _hydra()
    if hc is not None and hc.mode == RunMode.MULTIRUN:
        return f"{cfg.name}-{Path(hc.sweep.dir).name}"
    return cfg.name


def run_name(cfg: DictConfig, stage: str) -> str:
    hc = _hydra()
    overrides = hc.job.override_dirname if hc is not None else ""
    return f"{stage}-{overrides}" if overrides else stage


def make_loggers(cfg: DictConfig, stage: str, save_dir: Path) -> list:
    loggers = []
    for key, node in cfg.logger.items():
        if node._target_.endswith("WandbLogger"):
            (save_dir / "wandb").mkdir(exist_ok=True)
            kwargs = {k: v for k, v in plain(node).items() if k != "_target_"}
            kwargs.update(
                save_dir=str(save_dir), name=run_name(cfg, stage), job_type=stage,
                group=node.group or sweep_group(cfg), config=plain(cfg),
            )
            loggers.append(get_class(node._target_)(**kwargs))
        else:
            loggers.append(instantiate(node, save_dir=str(save_dir), name=key, version=""))
    return loggers


def make_trainer(cfg: DictConfig, stage: str, save_dir: Path, loggers: list, callbacks: list | None = None, **limits) -> L.Trainer:
    """The configured Lightning Trainer with this stage's limits, loggers and a last-checkpoint."""
    ckpt = ModelCheckpoint(dirpath=save_dir / "checkpoints", save_last=True)
    return instantiate(
        cfg.trainer, logger=loggers or False, callbacks=[ckpt, *(callbacks or [])],
        default_root_dir=str(save_dir), **limits,
    )


def finish_loggers(loggers: list) -> dict[str, str]:
    """Close the W&B runs (one per stage); return where each logger wrote."""
    where = {}
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            run = lg.experiment
            where["wandb"] = str(Path(run.dir).parent)
            run.finish()
        else:
            where[type(lg).__name__.replace("Logger", "").lower()] = str(lg.log_dir)
    return where


def metrics_of(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def load_rows(cfg: DictConfig, role: str):
    """The data set's rows for `role` (sft, preference, prompts, eval_prompts)."""
    node = cfg.data[role]
    if node is None:
        raise ValueError(f"data.{role}: the data set {cfg.data.name!r} has no {role} rows")
    return instantiate(node)


def holdout(rows: list, n: int) -> tuple[list, list]:
    """(train, val): the last `n` rows are validation (at most a fifth of them)."""
    n = min(n, len(rows) // 5)
    return (rows[:-n], rows[-n:]) if n else (rows, [])


def seed_stage(cfg: DictConfig, stage: str) -> None:
    """Seed every RNG from (seed, stage), so a stage trains the same whether or not the
    stages before it ran in this process or came from the cache."""
    L.seed_everything(cfg.seed * 1000 + zlib.crc32(stage.encode()) % 1000, workers=True, verbose=False)


def report(stage: str, where: dict[str, str], save_dir: Path) -> None:
    log.info("%s: checkpoints -> %s", stage, save_dir / "checkpoints")
    for k, v in where.items():
        log.info("%s: %s run -> %s", stage, k, v)


def log_image(loggers: list, key: str, path: Path, step: int) -> None:
    """A PNG as a W&B image (other loggers keep the file path only)."""
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.log_image(key=key, images=[str(path)], step=step)
