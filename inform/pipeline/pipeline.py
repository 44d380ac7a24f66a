"""Stage `pipeline` (the default): the simulated gold-RM pipeline of InfoRM sec. 4.1, end to end.

    sft -> gold -> label -> rm -> ppo (with eval at every eval step)

Every stage comes from the artifact cache when its inputs did not change, so a sweep over
beta / latent_dim / kl_coef trains SFT, the gold RM and the labels once.
"""
from __future__ import annotations

from omegaconf import DictConfig

from inform.pipeline.ppo import run_ppo


def run_pipeline(cfg: DictConfig) -> dict:
    return run_ppo(cfg)  # each stage ensures the ones it depends on, in order
