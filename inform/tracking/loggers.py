"""The loggers of a stage: its W&B run (offline unless asked otherwise) and CSV log, named
and grouped for a sweep, with secrets kept out of the logged config."""
from __future__ import annotations

import logging
import netrc
import os
import secrets
import socket
import string
from pathlib import Path
from urllib.parse import urlparse

from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from inform.config.plain import plain
from inform.runtime import ranks
from inform.runtime.run_dir import hydra_config

log = logging.getLogger("inform")


def sweep_group(cfg: DictConfig) -> str:
    """The W&B group: `group` when set (the Slurm scripts set it), the sweep folder's name
    under `-m`, else the experiment name."""
    if cfg.group:
        return cfg.group
    hc = hydra_config()
    if hc is not None and hc.mode == RunMode.MULTIRUN:
        return f"{cfg.name}-{Path(hc.sweep.dir).name}"
    return cfg.name



def run_name(cfg: DictConfig, stage: str) -> str:
    hc = hydra_config()
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



def report(stage: str, where: dict[str, str], save_dir: Path) -> None:
    log.info("%s: checkpoints -> %s", stage, save_dir / "checkpoints")
    for k, v in where.items():
        log.info("%s: %s run -> %s", stage, k, v)



def log_image(loggers: list, key: str, path: Path, step: int) -> None:
    """A PNG as a W&B image (other loggers keep the file path only)."""
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.log_image(key=key, images=[str(path)], step=step)
