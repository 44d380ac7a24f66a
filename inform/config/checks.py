"""Checks of values that are typed right but impossible (beta < 0, an unknown detector, ...),
and of `_target_` nodes' arguments; each failure names its dotted key."""
from __future__ import annotations

import inspect
import os
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig

from inform.config.schema import DETECTORS


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key."""


def _fail(key: str, msg: str) -> None:
    raise ConfigError(f"{key}: {msg}")


def check_target(node: Any, key: str) -> None:
    """A `_target_` node names an importable object, and each argument is one it accepts."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        _fail(key, "expected a node with a _target_")
    try:
        obj = get_object(node._target_)
    except Exception as err:
        _fail(f"{key}._target_", f"cannot import {node._target_!r} ({err})")
    fn = obj.__init__ if inspect.isclass(obj) else obj
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for arg in node:
        if not str(arg).startswith("_") and arg not in params:
            _fail(f"{key}.{arg}", f"not an argument of {node._target_} (it takes {', '.join(params)})")


def _check_model(m: DictConfig, key: str) -> None:
    if m.arch not in ("gpt_neox", "llama"):
        _fail(f"{key}.arch", f"{m.arch!r} is not gpt_neox or llama")
    if m.init not in ("pretrained", "random"):
        _fail(f"{key}.init", f"{m.init!r} is not pretrained or random")
    if m.dtype not in ("float32", "bfloat16", "float16"):
        _fail(f"{key}.dtype", f"{m.dtype!r} is not float32, bfloat16 or float16")
    for k in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_length"):
        if m[k] <= 0:
            _fail(f"{key}.{k}", f"must be > 0 (got {m[k]})")
    if m.hidden_size % m.num_heads:
        _fail(f"{key}.num_heads", f"must divide hidden_size {m.hidden_size} (got {m.num_heads})")


def _check_training(section: DictConfig, key: str) -> None:
    for k in ("batch_size", "lr"):
        if section[k] <= 0:
            _fail(f"{key}.{k}", f"must be > 0 (got {section[k]})")
    for k in ("weight_decay", "warmup_steps", "val_size"):
        if section[k] < 0:
            _fail(f"{key}.{k}", f"must be >= 0 (got {section[k]})")


def _check_ppo(cfg: DictConfig) -> None:
    ppo, ev, label = cfg.ppo, cfg.eval, cfg.label
    for key, value in [("ppo.temperature", ppo.temperature), ("eval.temperature", ev.temperature), ("label.temperature", label.temperature)]:
        if value <= 0:
            _fail(key, f"must be > 0 (got {value})")
    for key, value in [("ppo.top_p", ppo.top_p), ("eval.top_p", ev.top_p), ("label.top_p", label.top_p)]:
        if not 0.0 < value <= 1.0:
            _fail(key, f"must be in (0, 1] (got {value})")
    if ppo.kv_cache not in ("dynamic", "static"):
        _fail("ppo.kv_cache", f"must be dynamic or static (got {ppo.kv_cache!r})")
    for k in ("steps", "batch_size", "minibatches", "epochs", "max_new_tokens", "eval_every"):
        if ppo[k] <= 0:
            _fail(f"ppo.{k}", f"must be > 0 (got {ppo[k]})")
    if ppo.minibatches > ppo.batch_size:
        _fail("ppo.minibatches", f"must be <= ppo.batch_size {ppo.batch_size} (got {ppo.minibatches})")
    for k in ("policy_lr", "critic_lr", "clip", "value_clip", "reward_clip", "max_grad_norm"):
        if ppo[k] <= 0:
            _fail(f"ppo.{k}", f"must be > 0 (got {ppo[k]})")
    if ppo.kl_coef < 0:
        _fail("ppo.kl_coef", f"must be >= 0 (got {ppo.kl_coef})")
    if not 0.0 <= ppo.lam <= 1.0 or not 0.0 <= ppo.gamma <= 1.0:
        _fail("ppo.lam" if not 0.0 <= ppo.lam <= 1.0 else "ppo.gamma", "must be in [0, 1]")
    if ppo.kl_controller not in ("fixed", "adaptive"):
        _fail("ppo.kl_controller", f"{ppo.kl_controller!r} is not fixed or adaptive")
    if ppo.critic_init not in ("sft", "reward"):
        _fail("ppo.critic_init", f"{ppo.critic_init!r} is not sft or reward")
    if cfg.rloo.k < 2:
        _fail("rloo.k", f"must be >= 2: the leave-one-out baseline needs another sample (got {cfg.rloo.k})")
    if cfg.stage.name == "rloo" and ppo.batch_size % cfg.rloo.k:
        _fail("rloo.k", f"must divide ppo.batch_size {ppo.batch_size} (RLOO samples k for each of batch_size / k prompts)")
    if cfg.stage.name == "rloo" and (cfg.ibl_coef or cfg.energy_coef):
        _fail("ibl_coef" if cfg.ibl_coef else "energy_coef", "the IBL/EPPO reward penalties are implemented for PPO only")
    for key, value in [("label.n_prompts", label.n_prompts), ("label.batch_size", label.batch_size),
                       ("eval.n_prompts", ev.n_prompts), ("eval.batch_size", ev.batch_size)]:
        if value <= 0:
            _fail(key, f"must be > 0 (got {value})")


def _check_detectors(cfg: DictConfig) -> None:
    csi, maha = cfg.detectors.csi, cfg.detectors.mahalanobis
    unknown = [d for d in cfg.detect if d not in DETECTORS]
    if unknown:
        _fail("detect", f"unknown detector {unknown[0]!r} (known: {', '.join(DETECTORS)})")
    if csi.method not in ("dbscan", "hdbscan"):
        _fail("detectors.csi.method", f"{csi.method!r} is not dbscan or hdbscan")
    if csi.plot_method not in ("tsne", "pca"):
        _fail("detectors.csi.plot_method", f"{csi.plot_method!r} is not tsne or pca")
    for k in ("every_n_evals", "min_samples", "min_cluster_size", "plot_every_n_evals", "eps_scale"):
        if csi[k] <= 0:
            _fail(f"detectors.csi.{k}", f"must be > 0 (got {csi[k]})")
    if csi.eps is not None and csi.eps <= 0:
        _fail("detectors.csi.eps", f"must be > 0 or null (got {csi.eps})")
    if not 0.0 < maha.alpha < 1.0:
        _fail("detectors.mahalanobis.alpha", f"must be in (0, 1) (got {maha.alpha})")
    if maha.shrinkage not in ("none", "ledoit_wolf"):
        _fail("detectors.mahalanobis.shrinkage", f"{maha.shrinkage!r} is not none or ledoit_wolf")
    if maha.eps < 0 or (maha.pca_dim is not None and maha.pca_dim <= 0):
        _fail("detectors.mahalanobis.eps" if maha.eps < 0 else "detectors.mahalanobis.pca_dim", "must be >= 0 / > 0")
    watched = [m for d in cfg.detect for m in DETECTORS[d]]
    if cfg.early_stop.watch not in watched:
        _fail("early_stop.watch", f"{cfg.early_stop.watch!r} is not a metric of the active detectors ({', '.join(watched) or 'none'})")
    if cfg.early_stop.e_max <= 0:
        _fail("early_stop.e_max", f"must be > 0 (got {cfg.early_stop.e_max})")
    for key in ("ibl_coef", "energy_coef"):
        if cfg[key] < 0:
            _fail(key, f"must be >= 0 (got {cfg[key]})")
    if cfg.ibl_coef > 0 and cfg.objective.head.kind != "ib":
        _fail("ibl_coef", f"IBL needs an IB proxy reward model (objective=ib); objective {cfg.objective.name!r} has a "
              f"{cfg.objective.head.kind} head")


def _check_bon(cfg: DictConfig) -> None:
    bon = cfg.bon
    if bon.n_samples < 1:
        _fail("bon.n_samples", f"must be >= 1 (got {bon.n_samples})")
    if not bon.ns:
        _fail("bon.ns", "must list at least one n")
    bad = [n for n in bon.ns if not 1 <= n <= bon.n_samples]
    if bad:
        _fail("bon.ns", f"every n must be in [1, bon.n_samples={bon.n_samples}] (got {bad[0]}): "
              "best-of-n is estimated from bon.n_samples samples per prompt")


def _processes(value) -> int | None:
    """How many processes a Trainer's `devices`/`num_nodes` asks for (-1: all GPUs; None: auto)."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if "," in value:
            return len([v for v in value.split(",") if v.strip()])
        return int(value) if value.lstrip("-").isdigit() else None
    return len(value)  # a list of device indices


def _check_processes(trainer: DictConfig) -> None:
    """Several processes per run (devices x num_nodes > 1) are started by torchrun, one per
    device (inform/runtime/ranks.py): a Trainer asking for more than the run has would
    otherwise start its own copies of the whole pipeline, or wait for ranks that never come."""
    n = [_processes(trainer.get(key, 1)) for key in ("devices", "num_nodes")]
    if None in n:
        return
    want, have = (-1 if -1 in n else n[0] * n[1]), int(os.environ.get("WORLD_SIZE", "1"))
    if want != have and (want > 1 or want == -1 or have > 1):
        key = "trainer.num_nodes" if n[0] == 1 and n[1] != 1 else "trainer.devices"
        _fail(key, f"the Trainer asks for {'all devices' if want == -1 else want} processes and this run has {have} "
                   f"(WORLD_SIZE): start several with torchrun, one per device, e.g. `torchrun --nproc_per_node={max(want, 2)} "
                   f"run.py trainer=ddp trainer.devices={max(want, 2)}`; or set trainer.devices=1 trainer.num_nodes=1")


def check_values(cfg: DictConfig) -> None:
    """Typed right but impossible: each check names its key."""
    _check_processes(cfg.trainer)
    if cfg.beta < 0:
        _fail("beta", f"must be >= 0 (got {cfg.beta})")
    if cfg.latent_dim <= 0:
        _fail("latent_dim", f"must be > 0 (got {cfg.latent_dim})")
    if cfg.kl_coef < 0:
        _fail("kl_coef", f"must be >= 0 (got {cfg.kl_coef})")
    if cfg.seed < 0:
        _fail("seed", f"must be >= 0 (got {cfg.seed})")
    if cfg.on_nonfinite not in ("stop", "skip"):
        _fail("on_nonfinite", f"{cfg.on_nonfinite!r} is not stop or skip")
    head = cfg.objective.head
    if head.kind not in ("scalar", "ib"):
        _fail("objective.head.kind", f"{head.kind!r} is not scalar or ib")
    if head.latent_dim <= 0:
        _fail("objective.head.latent_dim", f"must be > 0 (got {head.latent_dim})")
    if head.decoder not in ("linear", "mlp"):
        _fail("objective.head.decoder", f"{head.decoder!r} is not linear or mlp")
    if not 0.0 <= cfg.label_noise <= 1.0:
        _fail("label_noise", f"must be in [0, 1] (got {cfg.label_noise})")
    for role in ("policy", "reward", "gold_model"):
        _check_model(cfg[role], role)
    for section in ("sft", "rm", "gold"):
        _check_training(cfg[section], section)
    _check_ppo(cfg)
    _check_detectors(cfg)
    _check_bon(cfg)
    if cfg.sft.max_steps <= 0 and cfg.sft.epochs <= 0:
        _fail("sft.max_steps", f"set sft.max_steps or sft.epochs > 0 (got {cfg.sft.max_steps} and {cfg.sft.epochs})")
    if cfg.rm.epochs <= 0:
        _fail("rm.epochs", f"must be > 0 (got {cfg.rm.epochs})")
    if cfg.rm.data not in ("human", "labels"):
        _fail("rm.data", f"{cfg.rm.data!r} is not human or labels")
    for section in ("rm", "gold"):
        if cfg[section].init not in ("base", "sft"):
            _fail(f"{section}.init", f"{cfg[section].init!r} is not base or sft")
    e = cfg.ensemble
    if e.members < 1:
        _fail("ensemble.members", f"must be >= 1 (got {e.members})")
    if e.combine not in ("mean", "min", "uwo", "warm"):
        _fail("ensemble.combine", f"{e.combine!r} is not mean, min, uwo or warm")
    if e.uwo_lambda < 0:
        _fail("ensemble.uwo_lambda", f"must be >= 0 (got {e.uwo_lambda})")
    for k in ("max_prompt_tokens", "max_response_tokens"):
        if cfg.data[k] <= 0:
            _fail(f"data.{k}", f"must be > 0 (got {cfg.data[k]})")
    roles = [n for n in (cfg.data.get(r) for r in ("sft", "preference", "prompts", "label_prompts", "eval_prompts")) if n is not None]
    if cfg.data.seed is not None and (cfg.data.seed < 0 or not any("data_seed" in n for n in roles)):
        _fail("data.seed", f"must be >= 0 (got {cfg.data.seed})" if cfg.data.seed < 0 else
              f"the data set {cfg.data.name!r} reads fixed rows, which data.seed cannot re-draw (set it to null)")
    if cfg.data.on_long_prompt not in ("truncate", "error"):
        _fail("data.on_long_prompt", f"{cfg.data.on_long_prompt!r} is not truncate or error")
    total = cfg.data.max_prompt_tokens + cfg.data.max_response_tokens
    for role in ("policy", "reward", "gold_model"):
        if total > cfg[role].max_length:
            _fail("data.max_prompt_tokens", f"data.max_prompt_tokens + data.max_response_tokens = {total} is more than "
                  f"{role}.max_length = {cfg[role].max_length} ({cfg[role].name})")
