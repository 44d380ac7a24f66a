"""The config contract: a structured schema plus range checks, run before any model is built.

`validate(cfg)` merges the composed config into the dataclasses below (an unknown key or a
wrong type fails with the key's full name), checks every `_target_` node's arguments against
the signature of the function it names (a misspelled argument fails), then checks values
that are typed right but impossible (beta < 0, latent_dim <= 0, ...). Every failure is a
`ConfigError` whose message starts with the dotted key.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key."""


@dataclass
class ModelSchema:
    name: str = MISSING
    arch: str = "gpt_neox"
    source: Optional[str] = None
    revision: Optional[str] = None
    init: str = "pretrained"
    hidden_size: int = MISSING
    num_layers: int = MISSING
    num_heads: int = MISSING
    num_kv_heads: Optional[int] = None
    intermediate_size: int = MISSING
    vocab_size: Optional[int] = None
    tokenizer_vocab_size: Optional[int] = None
    max_position_embeddings: int = 2048
    rotary_pct: float = 1.0
    tie_word_embeddings: bool = False
    params: Optional[int] = None
    dtype: str = "float32"
    max_length: int = 2048
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False


@dataclass
class HeadSchema:
    kind: str = "scalar"
    latent_dim: int = 128
    decoder: str = "linear"


@dataclass
class ObjectiveSchema:
    name: str = MISSING
    loss: Any = MISSING  # a `_target_` node: an inform.objectives function, `_partial_: true`
    head: HeadSchema = field(default_factory=HeadSchema)


@dataclass
class DataSchema:
    name: str = MISSING
    max_prompt_tokens: int = 512
    max_response_tokens: int = 512
    sft: Any = None  # `_target_` nodes returning a datasets.Dataset
    preference: Any = None
    prompts: Any = None
    eval_prompts: Any = None


@dataclass
class StageSchema:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class PathsSchema:
    artifacts: str = "artifacts"
    output_dir: Optional[str] = None


@dataclass
class SFTSchema:
    max_steps: int = 600
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    val_size: int = 512
    val_every: int = 200


@dataclass
class RMSchema:
    data: str = "human"
    init: str = "base"
    epochs: int = 1
    max_steps: int = -1
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    val_size: int = 512


@dataclass
class Schema:
    policy: ModelSchema = MISSING
    reward: ModelSchema = MISSING
    objective: ObjectiveSchema = MISSING
    data: DataSchema = MISSING
    stage: StageSchema = MISSING
    trainer: Any = MISSING  # a `_target_: lightning.Trainer` node
    logger: Any = field(default_factory=dict)  # name -> `_target_` logger node
    beta: float = 0.1
    latent_dim: int = 128
    kl_coef: float = 0.05
    seed: int = 0
    name: str = "default"
    paths: PathsSchema = field(default_factory=PathsSchema)
    sft: SFTSchema = field(default_factory=SFTSchema)
    rm: RMSchema = field(default_factory=RMSchema)


def _fail(key: str, msg: str) -> None:
    raise ConfigError(f"{key}: {msg}")


def check_target(node: Any, key: str, check_args: bool = True) -> None:
    """A `_target_` node names an importable object, and each argument is one it accepts."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        _fail(key, "expected a node with a _target_")
    try:
        obj = get_object(node._target_)
    except Exception as err:
        _fail(f"{key}._target_", f"cannot import {node._target_!r} ({err})")
    if not check_args:
        return
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


def check_values(cfg: DictConfig) -> None:
    """Typed right but impossible: each check names its key."""
    if cfg.beta < 0:
        _fail("beta", f"must be >= 0 (got {cfg.beta})")
    if cfg.latent_dim <= 0:
        _fail("latent_dim", f"must be > 0 (got {cfg.latent_dim})")
    if cfg.kl_coef < 0:
        _fail("kl_coef", f"must be >= 0 (got {cfg.kl_coef})")
    if cfg.seed < 0:
        _fail("seed", f"must be >= 0 (got {cfg.seed})")
    head = cfg.objective.head
    if head.kind not in ("scalar", "ib"):
        _fail("objective.head.kind", f"{head.kind!r} is not scalar or ib")
    if head.latent_dim <= 0:
        _fail("objective.head.latent_dim", f"must be > 0 (got {head.latent_dim})")
    if head.decoder not in ("linear", "mlp"):
        _fail("objective.head.decoder", f"{head.decoder!r} is not linear or mlp")
    for role in ("policy", "reward"):
        _check_model(cfg[role], role)
    _check_training(cfg.sft, "sft")
    _check_training(cfg.rm, "rm")
    if cfg.sft.max_steps <= 0:
        _fail("sft.max_steps", f"must be > 0 (got {cfg.sft.max_steps})")
    if cfg.rm.epochs <= 0:
        _fail("rm.epochs", f"must be > 0 (got {cfg.rm.epochs})")
    if cfg.rm.data not in ("human", "labels"):
        _fail("rm.data", f"{cfg.rm.data!r} is not human or labels")
    if cfg.rm.init not in ("base", "sft"):
        _fail("rm.init", f"{cfg.rm.init!r} is not base or sft")
    if cfg.rm.init == "sft" and cfg.reward.name != cfg.policy.name:
        _fail("rm.init", f"sft needs the reward model to be the policy's size ({cfg.reward.name} != {cfg.policy.name}); use rm.init=base")
    for k in ("max_prompt_tokens", "max_response_tokens"):
        if cfg.data[k] <= 0:
            _fail(f"data.{k}", f"must be > 0 (got {cfg.data[k]})")


def validate(cfg: DictConfig) -> DictConfig:
    """The composed config, typed by the schema and checked; raises ConfigError naming the key."""
    try:
        typed = OmegaConf.merge(OmegaConf.structured(Schema), cfg)
        OmegaConf.resolve(typed)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "config"
        msg = str(err).splitlines()[0]
        raise ConfigError(f"{key}: {msg}") from None
    check_target(typed.objective.loss, "objective.loss")
    check_target(typed.stage, "stage", check_args=False)  # a stage is called with the config
    check_target(typed.trainer, "trainer")
    for name, node in typed.logger.items():
        check_target(node, f"logger.{name}")
    for role in ("sft", "preference", "prompts", "eval_prompts"):
        if typed.data[role] is not None:
            check_target(typed.data[role], f"data.{role}")
    check_values(typed)
    OmegaConf.set_struct(typed, True)
    return typed
