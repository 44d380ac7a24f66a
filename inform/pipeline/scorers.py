"""The frozen scorers of the RL stages (PPO, RLOO, best-of-n, SFT statistics): the proxy RM
and the gold RM, each standardized so that the SFT policy's samples score about 0.

`proxy_scorer` loads the proxy's exports (the `proxy` stage's paths: one RM, an ensemble's
members combined by `ensemble.combine`, or WARM's average); `gold_scorer` loads the gold RM
standardized on the label stage's statistics.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from inform.models.ensemble import EnsembleScorer
from inform.models.reward_model import RewardModel
from inform.models.scorer import RewardScorer
from inform.models.tokenizer import tokenizer_from
from inform.pipeline.label import read_stats
from inform.pipeline.reward_fit import load_score_stats


def limits(cfg: DictConfig) -> dict:
    return dict(max_prompt_tokens=cfg.data.max_prompt_tokens, max_response_tokens=cfg.data.max_response_tokens)


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

