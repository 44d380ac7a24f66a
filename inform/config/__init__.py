"""The config contract: a structured schema plus range checks, run before any model is built.

`validate(cfg)` merges the composed config into the dataclasses of `schema.py` (an unknown
key, a wrong type or a key that no YAML sets fails with the key's full name: the schema holds
types only, the values are conf/'s), checks every `_target_` node's
arguments against the signature of the function it names (a misspelled argument fails),
then checks values that are typed right but impossible (`checks.py`: beta < 0,
latent_dim <= 0, ...). Every failure is a `ConfigError` whose message starts with the
dotted key.
"""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from inform.config.checks import ConfigError, check_target, check_values
from inform.config.run_start import run_start
from inform.config.schema import DETECTORS, Schema

__all__ = ["ConfigError", "DETECTORS", "Schema", "validate"]

if not OmegaConf.has_resolver("run_start"):  # conf/config.yaml's hydra.run.dir
    OmegaConf.register_new_resolver("run_start", run_start)


def validate(cfg: DictConfig) -> DictConfig:
    """The composed config, typed by the schema and checked; raises ConfigError naming the key."""
    try:
        typed = OmegaConf.merge(OmegaConf.structured(Schema), cfg)
        missing = sorted(OmegaConf.missing_keys(typed))
        if missing:
            raise ConfigError(f"{missing[0]}: no value (the schema has no defaults: set it in conf/)")
        OmegaConf.resolve(typed)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "config"
        msg = str(err).splitlines()[0]
        raise ConfigError(f"{key}: {msg}") from None
    check_target(typed.objective.loss, "objective.loss")
    check_target(typed.trainer, "trainer")
    for name, node in typed.logger.items():
        check_target(node, f"logger.{name}")
    for role in ("sft", "preference", "prompts", "label_prompts", "eval_prompts", "true_reward"):
        if typed.data[role] is not None:
            check_target(typed.data[role], f"data.{role}")
    check_values(typed)
    OmegaConf.set_struct(typed, True)
    return typed
