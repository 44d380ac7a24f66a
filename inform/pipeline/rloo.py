"""Stage `rloo`: RLOO of the SFT policy against the frozen proxy RM, the alternative to PPO.

The same prompts, eval, detectors, early stopping, exports and metrics as the `ppo` stage
(pipeline/ppo.py), and the `ppo` section's sampling, KL, learning-rate and update keys, so a
comparison changes one thing: `rloo.k` samples for each of `ppo.batch_size / k` prompts per
step (the same number of responses per step as PPO), a leave-one-out baseline instead of a
critic.

    python run.py stage=rloo rloo.k=4
"""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from inform.modules.rloo import RLOOModule
from inform.pipeline import common
from inform.pipeline.cache import build_once, plain, read_metrics, spec_hash
from inform.pipeline.gold import ensure_gold
from inform.pipeline.label import ensure_labels
from inform.pipeline.ppo import CURVE, fit_and_export, gaussian_of, ppo_config, ppo_spec, rl_parts
from inform.pipeline.scorers import ensure_proxy
from inform.pipeline.sft import ensure_sft
from inform.pipeline.sft_stats import ensure_sft_stats, load_sft_stats

log = logging.getLogger("inform")


def rloo_spec(cfg: DictConfig) -> dict:
    return {**ppo_spec(cfg), "algorithm": "rloo", "rloo": plain(cfg.rloo)}


def train_rloo(cfg: DictConfig, out: Path, sft: Path, rm: list[Path], gold: Path, labels: Path, stats_path: Path) -> None:
    common.seed_stage(cfg, "rloo")
    stats = load_sft_stats(stats_path)
    k = cfg.rloo.k
    parts = rl_parts(cfg, sft, rm, gold, labels, cfg.ppo.batch_size // k)
    module = RLOOModule(
        parts.policy, parts.ref, parts.proxy, parts.tok, ppo_config(cfg), k, parts.evaluator, seed=cfg.seed,
        on_nonfinite=cfg.on_nonfinite, gaussian=gaussian_of(cfg, stats), record_energy="energy" in cfg.detect,
    )
    fit_and_export(cfg, out, "rloo", module, parts.batches, stats, spec_hash(rloo_spec(cfg)))


def ensure_rloo(cfg: DictConfig) -> Path:
    sft, gold, labels, rm = ensure_sft(cfg), ensure_gold(cfg), ensure_labels(cfg), ensure_proxy(cfg)
    stats = ensure_sft_stats(cfg)
    return build_once(cfg.paths.artifacts, "rloo", rloo_spec(cfg), lambda out: train_rloo(cfg, out, sft, rm, gold, labels, stats))


def run_rloo(cfg: DictConfig) -> dict:
    path = ensure_rloo(cfg)
    log.info("rloo: policy -> %s, curve -> %s", path / "policy", path / CURVE)
    return {"export": str(path), **read_metrics(path)}
