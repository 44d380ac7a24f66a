"""The stage table: every stage of inform declared once, and `ensure`, which builds a stage
after its upstream stages, or reuses what the cache has.

A stage's artifact lives in `<paths.artifacts>/<name>-<hash>/` (inform/runtime/cache.py). Its
hash covers exactly two things, both taken from the table below:
  - the values of the config keys the stage declares (`keys`: dotted paths; a section covers
    everything under it), and
  - the hashes of its upstream stages, so each hash covers every key upstream as well.
No stage writes its dependency list a second time: `ensure` builds exactly the upstream stages
the hash covers, and hands their artifact folders to the build. tests/test_stage_graph.py
records every config key each build reads during a real run and fails when one is not
covered, and walks the table to check that a changed key changes its stage's hash and those
downstream of it, and nothing upstream.

    stage            upstream                               what it is
    sft              -                                      SFT of the policy preset
    sft_reward       -                                      the same recipe on the reward preset (rm.init=sft, another size)
    sft_gold         -                                      the same on the gold preset (gold.init=sft, another size)
    gold             sft* (gold.init=sft)                   the gold RM on the "human" preferences
    label            sft, gold                              SFT samples ranked by gold, label_noise flipped
    rm, rm_member<j> label (rm.data=labels), sft* (rm.init=sft)   the proxy RM / ensemble member j
    warm             rm, rm_member<j>, label                WARM: the members' weights averaged
    proxy            rm [+ members] | warm                  (no artifact) the proxy as the RL stages see it
    sft_stats        sft, proxy                             SFT eval samples' latents and energies (CSI's reference)
    sft_train_stats  sft, proxy                             one SFT sample per PPO prompt (Mahalanobis, IBL, EPPO)
    ppo, rloo        sft, gold, label, proxy, sft_stats [, sft_train_stats]   RL against the proxy, gold evals
    bon              sft, gold, label, proxy                best-of-n of SFT against the proxy
    (sft*: `sft` when the preset equals the policy's, else sft_reward / sft_gold)

`python run.py stage=<name>` builds one (`stage=pipeline` builds `ppo`, the simulated
pipeline's last stage; `stage=rm` builds the `proxy`); `explain=true` prints the plan instead: each stage, its hash, and
whether it would be built or reused.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Union

from omegaconf import DictConfig, OmegaConf

from inform.config.plain import plain
from inform.pipeline.audit import KeyRecorder, undeclared
from inform.pipeline.bon import build_bon
from inform.pipeline.gold import gold_upstream, train_gold
from inform.pipeline.label import make_labels
from inform.pipeline.ppo import rl_upstream, train_ppo
from inform.pipeline.rloo import train_rloo
from inform.pipeline.rm import (build_warm, member_stage, member_stages, proxy_keys, proxy_upstream, rm_data_upstream,
                                rm_upstream, train_rm)
from inform.pipeline.sft import ROLE_STAGE, train_sft
from inform.pipeline.sft_stats import compute_eval_stats, compute_train_stats
from inform.runtime.cache import artifact_path, build_once, is_complete, spec_hash
from inform.runtime.files import read_metrics

log = logging.getLogger("inform")
Keys = Union[tuple[str, ...], Callable[[DictConfig], tuple[str, ...]]]  # fixed, or chosen by the config

# Keys a build may read that never change what it computes: where it writes, how it logs,
# what the command line asked for. They are in no hash (sweeps share upstream artifacts).
RUNTIME_KEYS = (
    "paths", "logger", "name", "group", "stage", "explain", "audit",
    "trainer.log_every_n_steps", "trainer.enable_progress_bar", "trainer.enable_model_summary",
)
# Which rows a data set draws (data.seed re-draws the synthetic sets) and how texts become token ids.
DATA = ("data.seed", "data.max_prompt_tokens", "data.max_response_tokens", "data.on_long_prompt")
TRAINING = ("seed", "trainer", "on_nonfinite") + DATA  # what every trained stage's numbers depend on
SAMPLING = ("seed", "trainer.accelerator") + DATA  # the same for a stage that only samples and scores
RL = TRAINING + ("ppo", "eval", "detect", "detectors", "early_stop", "data.prompts", "data.label_prompts",
                 "data.eval_prompts", "data.true_reward", "label.n_prompts")


@dataclass(frozen=True)
class Stage:
    name: str
    keys: Keys  # the config keys the artifact depends on (besides its upstream stages')
    upstream: Keys  # the stages built first; their folders reach `build` as `up[name]`
    build: Callable[..., None] | None  # build(cfg, out, up, fingerprint); None: no artifact (proxy)
    trains: bool = False  # runs a Trainer, which every rank of a multi-process run joins
    consts: dict = field(default_factory=dict)  # fixed values of the spec (an ensemble member's index)


def _sft(role: str) -> Stage:
    """SFT of the `role` preset (policy, reward, gold_model): `sft`, `sft_reward`, `sft_gold`."""
    return Stage(ROLE_STAGE[role], (role, "sft", "data.sft") + TRAINING, (), partial(train_sft, role=role), trains=True)


def _rm_member(member: int) -> Stage:
    """The proxy RM (member 0, `rm`) or ensemble member j (`rm_member<j>`: its own seed; with WARM
    the members share the head init, so `ensemble.combine` is one of its keys)."""
    def keys(cfg: DictConfig) -> tuple[str, ...]:
        data = ("data.preference",) if cfg.rm.data != "labels" else ()  # else the label stage's hash covers it
        return ("reward", "objective", "rm") + TRAINING + data + (("ensemble.combine",) if member else ())

    return Stage(member_stage(member), keys, rm_upstream, partial(train_rm, member=member), trains=True,
                 consts={"member": member} if member else {})


STAGES: dict[str, Stage] = {s.name: s for s in [
    _sft("policy"), _sft("reward"), _sft("gold_model"),
    Stage("gold", ("gold", "gold_model", "data.preference") + TRAINING, gold_upstream, train_gold, trains=True),
    Stage("label", ("label", "label_noise", "data.prompts", "data.label_prompts") + SAMPLING, ("sft", "gold"), make_labels),
    _rm_member(0),
    Stage("warm", (), lambda cfg: member_stages(cfg) + rm_data_upstream(cfg), build_warm),
    Stage("proxy", proxy_keys, proxy_upstream, None),
    Stage("sft_stats", ("eval", "data.eval_prompts", "ppo.max_new_tokens") + SAMPLING, ("sft", "proxy"), compute_eval_stats),
    Stage("sft_train_stats", ("data.prompts", "data.label_prompts", "label.n_prompts", "eval.batch_size", "ppo.temperature",
                              "ppo.top_p", "ppo.max_new_tokens") + SAMPLING, ("sft", "proxy"), compute_train_stats),
    Stage("ppo", RL, rl_upstream, train_ppo, trains=True),
    Stage("rloo", RL + ("rloo",), rl_upstream, train_rloo, trains=True),
    Stage("bon", ("bon", "eval", "data.eval_prompts", "ppo.max_new_tokens") + SAMPLING, ("sft", "gold", "label", "proxy"),
          build_bon),
]}
AUDITED: dict[str, set[str]] = {}  # audit=true: the config keys each stage built in this process read
COMMANDS = {  # `stage=<name>` builds this stage of the table (any other name: the stage itself)
    "pipeline": "ppo",  # the simulated gold-RM pipeline ends in PPO
    "rm": "proxy",  # the proxy RM: every ensemble member, and WARM's average
}


def stage(name: str) -> Stage:
    """The table's entry for `name`; ensemble members `rm_member<j>` are the `rm` stage with index j."""
    if name in STAGES:
        return STAGES[name]
    if m := re.fullmatch(r"rm_member([1-9]\d*)", name):
        return _rm_member(int(m[1]))
    raise KeyError(f"stage: no stage {name!r} in the stage table (known: {', '.join(STAGES)}, rm_member<j>)")


def _resolve(keys: Keys, cfg: DictConfig) -> tuple[str, ...]:
    return tuple(keys(cfg) if callable(keys) else keys)


def keys_of(name: str, cfg: DictConfig) -> tuple[str, ...]:
    return _resolve(stage(name).keys, cfg)


def upstream_of(name: str, cfg: DictConfig) -> tuple[str, ...]:
    return _resolve(stage(name).upstream, cfg)


def value_of(cfg: DictConfig, key: str):
    """The plain value of `key` for a hash, without the runtime keys under it (trainer's logging)."""
    absent = object()
    value = OmegaConf.select(cfg, key, default=absent, throw_on_missing=True)
    if value is absent:
        raise KeyError(f"the stage table names the config key {key!r}, which the config does not have")
    value = plain(value)
    for runtime in RUNTIME_KEYS:
        if runtime.startswith(key + ".") and isinstance(value, dict):
            value.pop(runtime[len(key) + 1:], None)
    return value


def spec_of(name: str, cfg: DictConfig, _memo: dict | None = None) -> dict:
    """What the artifact of `name` depends on: its keys' values and its upstream stages' hashes."""
    memo = {} if _memo is None else _memo
    values = {k: memo[k] if k in memo else memo.setdefault(k, value_of(cfg, k)) for k in keys_of(name, cfg)}
    return {"keys": values, "upstream": {u: hash_of(u, cfg, memo) for u in upstream_of(name, cfg)}, **stage(name).consts}


def hash_of(name: str, cfg: DictConfig, _memo: dict | None = None) -> str:
    """The stage's hash; `_memo` keeps the values and hashes already computed for this config
    (a walk over many stages)."""
    memo = {} if _memo is None else _memo
    key = ("hash", name)
    if key not in memo:
        memo[key] = spec_hash(spec_of(name, cfg, memo))
    return memo[key]


def covered_keys(name: str, cfg: DictConfig) -> set[str]:
    """Every config key the hash of `name` covers: its own and, through their hashes, its upstream stages'."""
    keys = set(keys_of(name, cfg))
    for u in upstream_of(name, cfg):
        keys |= covered_keys(u, cfg)
    return keys


def is_covered(key: str, covered) -> bool:
    """`key` (dotted, list items as `[i]`) is one of `covered` or lies under one of them."""
    key = re.sub(r"\[\d+\]", "", key)
    return any(key == c or key.startswith(c + ".") for c in covered)


def plan(name: str, cfg: DictConfig) -> list[str]:
    """`name` and every stage upstream of it, each once, upstream first."""
    order: list[str] = []
    visiting: list[str] = []

    def visit(n: str) -> None:
        if n in order:
            return
        if n in visiting:
            raise ValueError(f"stage table: a circle of upstream stages: {' -> '.join(visiting + [n])}")
        visiting.append(n)
        for u in upstream_of(n, cfg):
            visit(u)
        visiting.pop()
        order.append(n)

    visit(name)
    return order


def ensure(name: str, cfg: DictConfig, _done: dict | None = None) -> Path | list[Path]:
    """The artifact folder of stage `name` (built after its upstream stages, or reused from the
    cache); for `proxy`, the list of its reward models' folders."""
    done = {} if _done is None else _done
    if name in done:
        return done[name]
    s = stage(name)
    up = {u: ensure(u, cfg, done) for u in upstream_of(name, cfg)}  # built (or waited for) before this stage's lock
    if s.build is None:  # the proxy: its reward models' folders
        done[name] = [p for u in upstream_of(name, cfg) for p in (up[u] if isinstance(up[u], list) else [up[u]])]
    else:
        spec = spec_of(name, cfg)
        fingerprint = spec_hash(spec)

        def build(out: Path) -> None:
            if not cfg.audit:
                return s.build(cfg, out, up, fingerprint)
            with KeyRecorder(cfg).recording(name) as recorder:
                s.build(cfg, out, up, fingerprint)
            AUDITED[name] = reads = recorder.reads.get(name, set())
            if missing := undeclared(reads, covered_keys(name, cfg) | set(RUNTIME_KEYS), is_covered):
                raise RuntimeError(f"audit: stage {name!r} read config keys its hash does not cover: {', '.join(missing)}; "
                                   "declare them in its entry of inform/pipeline/graph.py, or in RUNTIME_KEYS if they never "
                                   "change what a stage computes")

        done[name] = build_once(cfg.paths.artifacts, name, spec, build, trains=s.trains)
    return done[name]


def target_of(cfg: DictConfig) -> str:
    """The stage of the table that `stage=<name>` builds."""
    return COMMANDS.get(cfg.stage.name, cfg.stage.name)


def explain(name: str, cfg: DictConfig) -> str:
    """The stages `ensure(name)` would build or reuse, upstream first, with their hashes."""
    lines, todo = [], 0
    for n in plan(name, cfg):
        if stage(n).build is None:
            lines.append(f"  {n:<16} {'-':<12}  {'-':<7} made of {', '.join(upstream_of(n, cfg))}")
            continue
        path = artifact_path(cfg.paths.artifacts, n, spec_of(n, cfg))
        todo += not is_complete(path)
        lines.append(f"  {n:<16} {path.name.rsplit('-', 1)[1]}  {'reuse' if is_complete(path) else 'build':<7} {path}")
    return f"stage={cfg.stage.name}: {len(lines)} stages, {todo} to build\n" + "\n".join(lines)


def run_stage(cfg: DictConfig) -> dict:
    """What `python run.py stage=<name>` does: build (or reuse) the stage, or explain the plan."""
    name = target_of(cfg)
    if cfg.explain:
        text = explain(name, cfg)
        print(text, flush=True)
        return {"plan": text}
    path = ensure(name, cfg)
    paths = path if isinstance(path, list) else [path]
    for p in paths:
        log.info("%s: export -> %s", name, p)
    return {"export": str(paths[0]), "exports": [str(p) for p in paths], **read_metrics(paths[0])}
