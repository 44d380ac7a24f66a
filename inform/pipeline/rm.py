"""Stage `rm`: train the proxy reward model with the configured objective; export backbone + head.

Its data: the gold-labeled SFT samples of the label stage (`rm.data=labels`, the simulated
pipeline), or the data set's own preference pairs (`rm.data=human`).
"""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from inform.pipeline import common
from inform.pipeline.cache import build_once, plain, read_metrics, spec_hash
from inform.pipeline.label import ensure_labels, label_spec, read_pairs
from inform.pipeline.reward_fit import fit_reward_model
from inform.pipeline.sft import ensure_sft, sft_spec

log = logging.getLogger("inform")


def rm_spec(cfg: DictConfig) -> dict:
    """What the proxy RM depends on (its cache key)."""
    spec = {
        "reward": plain(cfg.reward), "objective": plain(cfg.objective), "rm": plain(cfg.rm), "seed": cfg.seed,
        "max_tokens": [cfg.data.max_prompt_tokens, cfg.data.max_response_tokens],
        "precision": str(cfg.trainer.get("precision")),
    }
    if cfg.rm.data == "labels":
        spec["data"] = "labels-" + spec_hash(label_spec(cfg))
    else:
        spec["data"] = plain(cfg.data.preference)
    if cfg.rm.init == "sft":
        spec["init"] = "sft-" + spec_hash(sft_spec(cfg))
    return spec


def ensure_rm(cfg: DictConfig) -> Path:
    """The proxy reward model's export folder, trained unless cached."""
    labels = ensure_labels(cfg) if cfg.rm.data == "labels" else None
    init_path = ensure_sft(cfg) if cfg.rm.init == "sft" else None

    def build(out: Path) -> None:
        rows = read_pairs(labels) if labels is not None else common.load_rows(cfg, "preference")
        fit_reward_model(cfg, out, stage="rm", model_cfg=cfg.reward, section=cfg.rm, objective=cfg.objective, rows=rows,
                         init_path=init_path, fingerprint=spec_hash(rm_spec(cfg)))

    return build_once(cfg.paths.artifacts, "rm", rm_spec(cfg), build)


def run_rm(cfg: DictConfig) -> dict:
    path = ensure_rm(cfg)
    log.info("rm: export -> %s", path)
    return {"export": str(path), **read_metrics(path)}
