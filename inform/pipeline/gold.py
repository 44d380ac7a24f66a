"""Stage `gold`: the gold reward model (Vicuna-7B in the paper), trained on the "human" preferences.

It stands in for human judgment: it labels the SFT samples the proxy RM learns from, and
scores the policy at every eval step. Always a Bradley-Terry RM with a scalar head.
`gold.init`: `sft` starts from SFT-trained weights of the gold preset (the policy's SFT export when
the presets match; the tiny pipeline: a random-init
gold RM judges the policy's samples poorly, correlation with the exact quality 0.57-0.62 on
PPO samples, against 0.83 from the SFT backbone); `base` from the gold model preset's own
weights (Vicuna-7B in the paper).
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from inform.data.rows import load_rows
from inform.pipeline.reward_fit import fit_reward_model
from inform.pipeline.sft import sft_export, sft_stage_for

GOLD_OBJECTIVE = {"name": "bt", "loss": {"_target_": "inform.objectives.bt_loss", "_partial_": True}, "head": {"kind": "scalar"}}


def gold_upstream(cfg: DictConfig) -> tuple[str, ...]:
    """The SFT export the gold RM starts from, with `gold.init=sft`."""
    return (sft_stage_for(cfg, "gold_model"),) if cfg.gold.init == "sft" else ()


def train_gold(cfg: DictConfig, out: Path, up: dict, fingerprint: str) -> None:
    fit_reward_model(
        cfg, out, stage="gold", model_cfg=cfg.gold_model, section=cfg.gold, objective=OmegaConf.create(GOLD_OBJECTIVE),
        rows=load_rows(cfg, "preference"), init_path=sft_export(up), fingerprint=fingerprint,
    )
