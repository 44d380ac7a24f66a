"""Stage `rm`: train the proxy reward model with the configured objective; export backbone + head.

Its data: the gold-labeled SFT samples of the label stage (`rm.data=labels`, the simulated
pipeline), or the data set's own preference pairs (`rm.data=human`).

The proxy the RL stages see (stage `proxy`, no artifact of its own) is one reward model, or
with `ensemble.members` k > 1 an ensemble of k: `rm` and `rm_member1` ... `rm_member<k-1>`,
differing in seed (data order and head init), combined by `ensemble.combine` (mean | min |
uwo) when scored, or WARM (`combine: warm`): the k members' weights averaged into one model,
an artifact of its own (stage `warm`, the same export format as an RM).
"""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from inform.data.rows import holdout, load_rows
from inform.models.causal_lm import torch_dtype
from inform.models.ensemble import average_weights
from inform.models.reward_model import RewardModel
from inform.models.tokenizer import tokenizer_from
from inform.pipeline.label import read_pairs
from inform.pipeline.reward_fit import (
    SCORE_STATS,
    fit_reward_model,
    pair_accuracy,
    pair_examples,
    score_stats,
)
from inform.pipeline.sft import sft_export, sft_stage_for
from inform.runtime.files import read_metrics, write_json

log = logging.getLogger("inform")


def member_stage(member: int) -> str:
    """Ensemble member j's stage name: member 0 is the single RM, `rm`."""
    return f"rm_member{member}" if member else "rm"


def member_seed(cfg: DictConfig, member: int) -> int:
    """Ensemble member j trains with seed + 1000 j (data order, IB noise; head init unless WARM)."""
    return cfg.seed + 1000 * member


def rm_data_upstream(cfg: DictConfig) -> tuple[str, ...]:
    """The label stage, when the proxy RM learns from its gold-labeled pairs."""
    return ("label",) if cfg.rm.data == "labels" else ()


def rm_upstream(cfg: DictConfig) -> tuple[str, ...]:
    """The labels (rm.data=labels) and the SFT export the RM starts from (rm.init=sft)."""
    init = (sft_stage_for(cfg, "reward"),) if cfg.rm.init == "sft" else ()
    return rm_data_upstream(cfg) + init


def rm_rows(cfg: DictConfig, up: dict):
    """The proxy RM's training pairs: the gold-labeled SFT samples, or the data set's own."""
    return read_pairs(up["label"]) if cfg.rm.data == "labels" else load_rows(cfg, "preference")


def train_rm(cfg: DictConfig, out: Path, up: dict, fingerprint: str, member: int = 0) -> None:
    """The proxy reward model (or ensemble member `member`), exported to `out`."""
    seed = member_seed(cfg, member)
    head_seed = cfg.seed if member and cfg.ensemble.combine == "warm" else seed
    fit_reward_model(cfg, out, stage=member_stage(member), model_cfg=cfg.reward, section=cfg.rm, objective=cfg.objective,
                     rows=rm_rows(cfg, up), init_path=sft_export(up), fingerprint=fingerprint, data_seed=seed, head_seed=head_seed)


def member_stages(cfg: DictConfig) -> tuple[str, ...]:
    return tuple(member_stage(j) for j in range(cfg.ensemble.members))


def proxy_upstream(cfg: DictConfig) -> tuple[str, ...]:
    """What the proxy is made of: the single RM, the ensemble's members, or WARM's average."""
    if cfg.ensemble.members > 1 and cfg.ensemble.combine == "warm":
        return ("warm",)
    return member_stages(cfg)


def proxy_keys(cfg: DictConfig) -> tuple[str, ...]:
    """How an ensemble's members are combined when scored (a single RM or WARM: nothing)."""
    return ("ensemble.combine", "ensemble.uwo_lambda") if len(proxy_upstream(cfg)) > 1 else ()


def build_warm(cfg: DictConfig, out: Path, up: dict, fingerprint: str) -> None:
    """Average the members' weights (WARM) and export the result with its own score statistics
    (on the same training pairs as the members) and its held-out accuracy."""
    members = [path for name, path in up.items() if name == "rm" or name.startswith("rm_member")]  # in member order
    merged = average_weights([RewardModel.from_pretrained(p, "float32") for p in members])
    tok = tokenizer_from(members[0])
    train, val = holdout(pair_examples(tok, rm_rows(cfg, up), cfg), cfg.rm.val_size)
    merged.to(torch_dtype(cfg.reward.dtype)).save_pretrained(out, tok)
    stats = score_stats(merged, train, tok.pad_token_id)
    write_json(out / SCORE_STATS, stats)
    metrics = {"rm/score_mean": stats["mean"], "rm/score_std": stats["std"], "warm/members": len(members)}
    if val:
        metrics["val/acc"] = pair_accuracy(merged, val, tok.pad_token_id)
        metrics["warm/member_val_acc"] = [read_metrics(p).get("val/acc") for p in members]
    write_json(out / "metrics.json", metrics)
    log.info("warm: %d members averaged -> %s (val/acc %s)", len(members), out, metrics.get("val/acc"))
