"""Stage `rloo`: RLOO of the SFT policy against the frozen proxy RM, the alternative to PPO.

The same prompts, eval, detectors, early stopping, exports and metrics as the `ppo` stage
(pipeline/ppo.py), and the `ppo` section's sampling, KL, learning-rate and update keys, so a
comparison changes one thing: `rloo.k` samples for each of `ppo.batch_size / k` prompts per
step (the same number of responses per step as PPO), a leave-one-out baseline instead of a
critic.

    python run.py stage=rloo rloo.k=4
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from inform.modules.rloo import RLOOModule
from inform.pipeline.ppo import fit_and_export, gaussian_of, ppo_config, rl_parts
from inform.pipeline.sft_stats import load_sft_stats
from inform.runtime.run_dir import seed_stage


def train_rloo(cfg: DictConfig, out: Path, up: dict, fingerprint: str) -> None:
    seed_stage(cfg, "rloo")
    stats = load_sft_stats(up)
    k = cfg.rloo.k
    parts = rl_parts(cfg, up, cfg.ppo.batch_size // k)
    module = RLOOModule(
        parts.policy, parts.ref, parts.proxy, parts.tok, ppo_config(cfg), k, parts.evaluator, seed=cfg.seed,
        on_nonfinite=cfg.on_nonfinite, gaussian=gaussian_of(cfg, stats), record_energy="energy" in cfg.detect,
    )
    fit_and_export(cfg, out, "rloo", module, parts.batches, stats, fingerprint)
