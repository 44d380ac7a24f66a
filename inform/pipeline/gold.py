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

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from inform.pipeline import common
from inform.pipeline.cache import build_once, plain, read_metrics, spec_hash, trainer_numerics
from inform.pipeline.reward_fit import fit_reward_model
from inform.pipeline.sft import ensure_sft, sft_spec

log = logging.getLogger("inform")
GOLD_OBJECTIVE = {"name": "bt", "loss": {"_target_": "inform.objectives.bt_loss", "_partial_": True}, "head": {"kind": "scalar"}}


def gold_spec(cfg: DictConfig) -> dict:
    spec = {
        "gold": plain(cfg.gold), "model": plain(cfg.gold_model), "data": plain(cfg.data.preference), "seed": cfg.seed,
        "max_tokens": [cfg.data.max_prompt_tokens, cfg.data.max_response_tokens],
        **trainer_numerics(cfg),
    }
    if cfg.gold.init == "sft":
        spec["init"] = "sft-" + spec_hash(sft_spec(cfg, "gold_model"))
    return spec


def ensure_gold(cfg: DictConfig) -> Path:
    init_path = ensure_sft(cfg, "gold_model") if cfg.gold.init == "sft" else None

    def build(out: Path) -> None:
        rows = common.load_rows(cfg, "preference")
        fit_reward_model(
            cfg, out, stage="gold", model_cfg=cfg.gold_model, section=cfg.gold,
            objective=OmegaConf.create(GOLD_OBJECTIVE), rows=rows, init_path=init_path, fingerprint=spec_hash(gold_spec(cfg)),
        )

    return build_once(cfg.paths.artifacts, "gold", gold_spec(cfg), build)


def run_gold(cfg: DictConfig) -> dict:
    path = ensure_gold(cfg)
    log.info("gold: export -> %s", path)
    return {"export": str(path), **read_metrics(path)}
