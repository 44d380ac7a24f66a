"""What every stage shares: its run folder, loggers, trainer and data rows."""
from __future__ import annotations

import logging
import netrc
import os
import secrets
import socket
import string
import time
import warnings
import zlib
from pathlib import Path
from urllib.parse import urlparse

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.strategies import DeepSpeedStrategy
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from inform.data.collate import ResumableSampler, encode_prompts
from inform.pipeline import ranks
from inform.pipeline.cache import deepspeed_stage, make_dir, plain
from inform.pipeline.preempt import PreemptCheckpoint, check_resume_checkpoint, under_slurm

PREEMPT_CKPT = "preempt.ckpt"

log = logging.getLogger("inform")


def _hydra():
    return HydraConfig.get() if HydraConfig.initialized() else None


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


def job_dir(cfg: DictConfig) -> Path:
    """This run's folder: `paths.output_dir`, else Hydra's, else outputs/<time>."""
    hc = _hydra()
    base = cfg.paths.output_dir or (hc.runtime.output_dir if hc else f"outputs/{time.strftime('%Y-%m-%d/%H-%M-%S')}")
    return Path(base)


def stage_dir(cfg: DictConfig, stage: str) -> Path:
    return make_dir(job_dir(cfg) / stage, "paths.output_dir (the run folder: logs, W&B, checkpoints)")


def sweep_group(cfg: DictConfig) -> str:
    """The W&B group: `group` when set (the Slurm scripts set it), the sweep folder's name
    under `-m`, else the experiment name."""
    if cfg.group:
        return cfg.group
    hc = _hydra()
    if hc is not None and hc.mode == RunMode.MULTIRUN:
        return f"{cfg.name}-{Path(hc.sweep.dir).name}"
    return cfg.name


def run_name(cfg: DictConfig, stage: str) -> str:
    hc = _hydra()
    overrides = hc.job.override_dirname if hc is not None else ""
    return f"{stage}-{overrides}" if overrides else stage


def wandb_run_id(save_dir: Path) -> str:
    """The stage's W&B run id, fixed at its first start: a resumed job logs to the same run."""
    f = save_dir / "wandb_id"
    if not f.is_file():
        tmp = f.with_suffix(".tmp")
        tmp.write_text("".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8)))
        os.replace(tmp, f)
    return f.read_text().strip()


SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password")


def redact(value, key: str = ""):
    """A copy of a config tree with the values of secret-looking keys replaced (never logged)."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    return "***" if any(w in key.lower() for w in SECRET_WORDS) and value not in (None, "") else value


def own_wandb_service() -> None:
    """Forget a W&B service inherited from a parent process (`WANDB_SERVICE`, set by wandb in
    any Python process that ran `wandb.init`, and passed on to what it starts: a notebook or
    test session calling sbatch or run.py). Runs would otherwise live in the parent's service,
    and a requeued job resuming its run id is refused there ("run ID ... is in use") because
    the killed attempt never finished it. Our own process's service (same pid) is kept."""
    token = os.environ.get("WANDB_SERVICE", "")
    parts = token.split("-")
    if token and (len(parts) < 2 or parts[1] != str(os.getpid())):
        del os.environ["WANDB_SERVICE"]


def wandb_offline_reason() -> str | None:
    """Why online W&B logging cannot work here (no key, no network), or None."""
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    if not has_key:
        try:
            has_key = netrc.netrc().authenticators("api.wandb.ai") is not None
        except (OSError, netrc.NetrcParseError):
            has_key = False
    if not has_key:
        return "no W&B API key (WANDB_API_KEY or ~/.netrc)"
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError as err:
        return f"{host} is not reachable ({err})"
    return None


def make_loggers(cfg: DictConfig, stage: str, save_dir: Path) -> list:
    """The stage's W&B run and CSV log; none on ranks > 0 of a multi-process run (rank 0 logs)."""
    loggers = []
    if ranks.rank() > 0:
        return loggers
    for key, node in cfg.logger.items():
        if node._target_.endswith("WandbLogger"):
            own_wandb_service()
            (save_dir / "wandb").mkdir(exist_ok=True)
            kwargs = {k: v for k, v in plain(node).items() if k != "_target_"}
            if not kwargs.get("offline", True) and (why := wandb_offline_reason()):
                log.warning("%s: W&B online logging asked for, but %s: logging offline to %s instead "
                            "(`wandb sync` uploads it later)", stage, why, save_dir / "wandb")
                kwargs["offline"] = True
            kwargs.update(
                save_dir=str(save_dir), name=run_name(cfg, stage), job_type=stage,
                group=node.group or sweep_group(cfg), config=redact(plain(cfg)), id=wandb_run_id(save_dir), resume="allow",
            )
            loggers.append(get_class(node._target_)(**kwargs))
        else:  # one CSV per attempt (Lightning deletes an existing metrics.csv); read_csv_metrics joins them
            parts = sorted(p for p in (save_dir / key).glob("part*") if (p / "metrics.csv").is_file())
            loggers.append(instantiate(node, save_dir=str(save_dir), name=key, version=f"part{len(parts)}"))
    return loggers


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


def prompt_ids(cfg: DictConfig, tokenizer, texts, role: str) -> list[list[int]]:
    """Token ids of a data role's prompts, long ones cut or refused per `data.on_long_prompt`."""
    return encode_prompts(tokenizer, texts, cfg.data.max_prompt_tokens, cfg.data.on_long_prompt, f"data.{role}")


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
