"""Each value once: the schema (inform/config/schema.py) holds types, the YAML under conf/ the
values. A key with a default in both, or a YAML key the schema does not type, fails here; and
every option of every config group composes into a config that validates."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import MISSING, DictConfig, OmegaConf

from inform.config import ConfigError, validate
from inform.config.schema import Schema

CONF = Path(__file__).resolve().parents[1] / "conf"
# where the schema types a node as Any: `_target_` nodes, whose arguments validate() checks
# against the function they name (a logger: name -> `_target_` node; data roles may be null)
UNTYPED = {"trainer", "logger", "objective.loss", *(f"data.{r}" for r in
           ("sft", "preference", "prompts", "label_prompts", "eval_prompts", "true_reward"))}
GROUPS = {  # group -> the overrides that pick an option (model: all three roles)
    "model": lambda o: [f"model@policy={o}", f"model@reward={o}", f"model@gold_model={o}"],
    **{g: (lambda o, g=g: [f"{g}={o}"]) for g in ("objective", "data", "stage", "trainer", "logger", "experiment")},
}


def _fields(cls) -> dict[str, tuple[dataclasses.Field, typing.Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def _dataclass_of(tp) -> type | None:
    """The dataclass a field's type names (through Optional), else None."""
    args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) is typing.Union else [tp]
    return args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else None


def schema_defaults(cls, prefix: str = "") -> set[str]:
    """Dotted keys of the fields that hold a default (anything but none or MISSING), recursively."""
    out = set()
    for name, (f, tp) in _fields(cls).items():
        key = prefix + name
        if f.default is not dataclasses.MISSING and f.default != MISSING or f.default_factory is not dataclasses.MISSING:
            out.add(key)
        sub = _dataclass_of(tp)
        if sub is not None:
            out |= schema_defaults(sub, key + ".")
    return out


def yaml_keys(cfg: DictConfig, cls, prefix: str = "", untyped: set[str] = frozenset()) -> tuple[set[str], set[str]]:
    """(dotted keys the composed config sets, those of them the schema does not type), walking
    the config beside the schema; an `untyped` key's node is the schema's Any and not walked."""
    keys, stray = set(), set()
    types = _fields(cls)
    for name in cfg:
        key = prefix + str(name)
        keys.add(key)
        if name not in types:
            stray.add(key)
            continue
        sub = _dataclass_of(types[name][1])
        node = cfg._get_node(name)
        if sub is not None and isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            k, s = yaml_keys(node, sub, key + ".", untyped)
            keys, stray = keys | k, stray | s
        elif sub is None and key not in untyped and isinstance(node, DictConfig):
            stray.add(key)  # a section in the YAML where the schema has a plain type or Any
    return keys, stray


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def all_overrides() -> list[list[str]]:
    return [[]] + [over for group, pick in GROUPS.items() for o in options(group) for over in [pick(o)]]


# --------------------------------------------------------------------------- the checker itself
@dataclass
class _Inner:
    a: int
    b: float = 0.5


@dataclass
class _Toy:
    x: int
    inner: _Inner
    y: str = MISSING
    z: typing.Optional[int] = None


def test_the_checker_finds_a_default_held_twice_and_an_untyped_key():
    assert schema_defaults(_Toy) == {"inner.b", "z"}
    keys, stray = yaml_keys(OmegaConf.create({"x": 1, "inner": {"a": 2, "b": 0.5, "c": 3}, "y": "s", "w": {"v": 1}}), _Toy)
    assert keys & schema_defaults(_Toy) == {"inner.b"}
    assert stray == {"inner.c", "w"}


# --------------------------------------------------------------------------- the real schema and conf/
def test_the_schema_holds_no_defaults():
    assert schema_defaults(Schema) == set()


@pytest.mark.parametrize("overrides", all_overrides(), ids=lambda o: " ".join(o) or "default")
def test_no_key_has_a_value_in_both_the_schema_and_the_yaml_and_every_yaml_key_is_typed(compose, overrides):
    keys, stray = yaml_keys(compose(*overrides), Schema, untyped=UNTYPED)
    both = keys & schema_defaults(Schema)
    assert not both, f"a default in inform/config/schema.py and a value in conf/ for {sorted(both)}: keep the YAML's"
    assert not stray, f"conf/ sets {sorted(stray)}, which inform/config/schema.py does not type"


@pytest.mark.parametrize("overrides", all_overrides(), ids=lambda o: " ".join(o) or "default")
def test_every_option_of_every_group_validates(compose, overrides):
    """Each file of conf/model (all three roles), objective, data, stage, trainer, logger and
    experiment sets what the schema needs: with no defaults there, a missing key would fail."""
    cfg = validate(compose(*overrides))
    assert not OmegaConf.missing_keys(cfg)


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), group


def test_a_key_no_yaml_sets_fails_naming_it(compose):
    with pytest.raises(ConfigError, match=r"^sft\.lr: no value"):
        validate(compose("~sft.lr"))
    cfg = compose()  # an Optional key too (Hydra's `~key` cannot delete a null)
    OmegaConf.set_struct(cfg, False)
    cfg.policy.pop("num_kv_heads")
    with pytest.raises(ConfigError, match=r"^policy\.num_kv_heads: no value"):
        validate(cfg)
