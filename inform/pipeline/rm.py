"""Stage `rm`: train the proxy reward model with the configured objective; export backbone + head.

Its data: the gold-labeled SFT samples of the label stage (`rm.data=labels`, the simulated
pipeline), or the data set's own preference pairs (`rm.data=human`).
"""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from inform.pipeline import common
from inform.pipeline.cache import build_once, plain, read_metrics, spec_hash, trainer_numerics
from inform.pipeline.label import ensure_labels, label_spec, read_pairs
from inform.pipeline.reward_fit import fit_reward_model
from inform.pipeline.sft import ensure_sft, sft_spec

log = logging.getLogger("inform")


def member_seed(cfg: DictConfig, member: int) -> int:
    """Ensemble member j trains with seed + 1000 j (data order, IB noise; head init unless WARM)."""
    return cfg.seed + 1000 * member


def rm_spec(cfg: DictConfig, member: int = 0) -> dict:
    """What the proxy RM depends on (its cache key). Member 0 of an ensemble is the single RM."""
    spec = {
        "reward": plain(cfg.reward), "objective": plain(cfg.objective), "rm": plain(cfg.rm), "seed": cfg.seed,
        "max_tokens": [cfg.data.max_prompt_tokens, cfg.data.max_response_tokens],
        **trainer_numerics(cfg),
    }
    if cfg.rm.data == "labels":
        spec["data"] = "labels-" + spec_hash(label_spec(cfg))
    else:
        spec["data"] = plain(cfg.data.preference)
    if cfg.rm.init == "sft":
        spec["init"] = "sft-" + spec_hash(sft_spec(cfg, "reward"))
    if member:
        spec["member"] = member
        spec["shared_head_init"] = cfg.ensemble.combine == "warm"
    return spec


def rm_rows(cfg: DictConfig):
    """The proxy RM's training pairs: the gold-labeled SFT samples, or the data set's own."""
    return read_pairs(ensure_labels(cfg)) if cfg.rm.data == "labels" else common.load_rows(cfg, "preference")


def ensure_rm(cfg: DictConfig, member: int = 0) -> Path:
    """The proxy reward model's (or ensemble member's) export folder, trained unless cached."""
    if cfg.rm.data == "labels":
        ensure_labels(cfg)  # built (or waited for) before this stage's lock is taken
    init_path = ensure_sft(cfg, "reward") if cfg.rm.init == "sft" else None

    def build(out: Path) -> None:
        rows = rm_rows(cfg)
        seed = member_seed(cfg, member)
        fit_reward_model(cfg, out, stage=f"rm_member{member}" if member else "rm", model_cfg=cfg.reward, section=cfg.rm,
                         objective=cfg.objective, rows=rows, init_path=init_path, fingerprint=spec_hash(rm_spec(cfg, member)),
                         data_seed=seed, head_seed=cfg.seed if cfg.ensemble.combine == "warm" else seed)

    return build_once(cfg.paths.artifacts, "rm", rm_spec(cfg, member), build)


def run_rm(cfg: DictConfig) -> dict:
    """The proxy RM; with `ensemble.members` k > 1 every member (and WARM's average)."""
    from inform.pipeline.scorers import ensure_proxy  # the proxy as the RL stages see it

    paths = ensure_proxy(cfg)
    for path in paths:
        log.info("rm: export -> %s", path)
    return {"export": str(paths[0]), "exports": [str(p) for p in paths], **read_metrics(paths[0])}
