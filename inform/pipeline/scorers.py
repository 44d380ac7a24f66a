"""The frozen scorers of the RL stages (PPO, RLOO, best-of-n): the proxy RM and the gold RM.

`ensure_proxy(cfg)` builds (or reuses) the proxy's exports and `proxy_scorer` loads them;
`gold_scorer` loads the gold RM standardized on the label stage's statistics.

The proxy is one reward model, or with `ensemble.members` k > 1 an ensemble of k (members
differ in seed: data order and head init) combined by `ensemble.combine` (mean | min | uwo),
or WARM (`combine: warm`): the k members' weights averaged into one model, an artifact of
its own (`warm-<hash>/`, the same export format as an RM).
"""
from __future__ import annotations

from pathlib import Path

import logging

from omegaconf import DictConfig

from inform.models.causal_lm import torch_dtype
from inform.models.ensemble import EnsembleScorer, average_weights
from inform.models.reward_model import RewardModel
from inform.models.scorer import RewardScorer
from inform.models.tokenizer import tokenizer_from
from inform.pipeline import common
from inform.pipeline.cache import build_once, read_metrics, spec_hash, write_json
from inform.pipeline.label import read_stats
from inform.pipeline.reward_fit import SCORE_STATS, load_score_stats, pair_accuracy, pair_examples, score_stats
from inform.pipeline.rm import ensure_rm, rm_rows, rm_spec

log = logging.getLogger("inform")


def limits(cfg: DictConfig) -> dict:
    return dict(max_prompt_tokens=cfg.data.max_prompt_tokens, max_response_tokens=cfg.data.max_response_tokens)


def warm_spec(cfg: DictConfig) -> dict:
    return {"members": [spec_hash(rm_spec(cfg, j)) for j in range(cfg.ensemble.members)]}


def proxy_spec(cfg: DictConfig) -> str:
    """The proxy's identity in the RL stages' cache keys (a single RM's is its rm hash)."""
    e = cfg.ensemble
    if e.members == 1:
        return spec_hash(rm_spec(cfg))
    if e.combine == "warm":
        return "warm-" + spec_hash(warm_spec(cfg))
    return spec_hash({**warm_spec(cfg), "combine": e.combine, "uwo_lambda": e.uwo_lambda})


def ensure_proxy(cfg: DictConfig) -> list[Path]:
    """The proxy RM's export folders: one, one per ensemble member, or WARM's average."""
    members = [ensure_rm(cfg, j) for j in range(cfg.ensemble.members)]
    if cfg.ensemble.members == 1 or cfg.ensemble.combine != "warm":
        return members
    return [build_once(cfg.paths.artifacts, "warm", warm_spec(cfg), lambda out: build_warm(cfg, members, out), trains=False)]


def build_warm(cfg: DictConfig, members: list[Path], out: Path) -> None:
    """Average the members' weights (WARM) and export the result with its own score statistics
    (on the same training pairs as the members) and its held-out accuracy."""
    merged = average_weights([RewardModel.from_pretrained(p, "float32") for p in members])
    tok = tokenizer_from(members[0])
    train, val = common.holdout(pair_examples(tok, rm_rows(cfg), cfg), cfg.rm.val_size)
    merged.to(torch_dtype(cfg.reward.dtype)).save_pretrained(out, tok)
    stats = score_stats(merged, train, tok.pad_token_id)
    write_json(out / SCORE_STATS, stats)
    metrics = {"rm/score_mean": stats["mean"], "rm/score_std": stats["std"], "warm/members": len(members)}
    if val:
        metrics["val/acc"] = pair_accuracy(merged, val, tok.pad_token_id)
        metrics["warm/member_val_acc"] = [read_metrics(p).get("val/acc") for p in members]
    write_json(out / "metrics.json", metrics)
    log.info("warm: %d members averaged -> %s (val/acc %s)", len(members), out, metrics.get("val/acc"))


def _one_scorer(cfg: DictConfig, path: Path, policy_tokenizer, missing_eos_penalty: float) -> RewardScorer:
    stats = load_score_stats(path)
    return RewardScorer(
        RewardModel.from_pretrained(path, cfg.reward.dtype), tokenizer_from(path), policy_tokenizer, stats["mean"], stats["std"],
        missing_eos_penalty=missing_eos_penalty, **limits(cfg),
    )


def proxy_scorer(cfg: DictConfig, paths: list[Path], policy_tokenizer, missing_eos_penalty: float) -> RewardScorer | EnsembleScorer:
    """The proxy RM as the RL stages see it: the raw score standardized with its training-sample
    statistics; an ensemble aggregates its members' standardized scores."""
    if len(paths) == 1:
        return _one_scorer(cfg, paths[0], policy_tokenizer, missing_eos_penalty)
    members = [_one_scorer(cfg, p, policy_tokenizer, 0.0) for p in paths]
    return EnsembleScorer(members, cfg.ensemble.combine, cfg.ensemble.uwo_lambda, missing_eos_penalty)


def gold_scorer(cfg: DictConfig, gold: Path, labels: Path, policy_tokenizer) -> RewardScorer:
    """The gold RM, standardized on the label stage's SFT samples (so the SFT policy scores ~0)."""
    stats = read_stats(labels)
    return RewardScorer(
        RewardModel.from_pretrained(gold, cfg.gold_model.dtype), tokenizer_from(gold), policy_tokenizer,
        stats["gold_mean"], stats["gold_std"], missing_eos_penalty=cfg.eval.missing_eos_penalty, **limits(cfg),
    )

