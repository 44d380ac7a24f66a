"""Stages `sft_stats` and `sft_train_stats`: what the detectors and mitigations compare the
policy against, computed once per (SFT model, proxy RM) and cached like every stage.

- `sft_stats`, the eval reference: the SFT policy's samples on the eval prompts, drawn with
  another seed than the evals': their proxy latents (CSI's SFT cloud) and the SFT model's
  energy on them (`detect/energy_gap`). Files `eval_latents.npy` (n, D), `eval_energy.npy` (n,).
- `sft_train_stats`, built only when Mahalanobis/MOP, IBL or EPPO need it (`needs_train_stats`):
  one SFT sample per PPO prompt (PPO's sampling settings): proxy latents (the SFT Gaussian of
  Mahalanobis and IBL) and the SFT energies E_sft(x, y_sft) that EPPO compares each rollout
  with, prompt by prompt. Files `train_latents.npy` (m, D), `train_energy.npy` (m,).
Each sampling pass seeds its own generator (`Evaluator.run`), so the two stages draw the same
samples whether they are built together or apart.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from inform.data.rows import load_rows, prompt_ids
from inform.detect.energy import EnergyRecorder
from inform.models.causal_lm import load_causal_lm
from inform.models.tokenizer import tokenizer_from
from inform.pipeline.label import ppo_prompts
from inform.pipeline.scorers import proxy_scorer
from inform.rl.evaluate import Evaluator
from inform.runtime.run_dir import seed_stage
from inform.runtime.trainer import stage_device

log = logging.getLogger("inform")
REFERENCE_SEED_OFFSET = 1  # the eval reference is sampled with seed + 1, the evals with seed


@dataclass
class SFTStats:
    eval_latents: np.ndarray  # (n_eval, D)
    eval_energy: np.ndarray  # (n_eval,)
    train_latents: np.ndarray | None = None  # (n_ppo_prompts, D)
    train_energy: np.ndarray | None = None  # (n_ppo_prompts,)


def needs_train_stats(cfg: DictConfig) -> bool:
    """Mahalanobis/MOP, IBL and EPPO compare with the SFT policy's samples on the PPO prompts."""
    return "mahalanobis" in cfg.detect or cfg.ppo.ibl_coef > 0 or cfg.ppo.energy_coef > 0


def sample_sft(cfg: DictConfig, up: dict, stage: str, texts: list[str], role: str, temperature: float, top_p: float,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The SFT policy's samples on `texts`: their proxy latents (n, D) and the policy's energies (n,)."""
    seed_stage(cfg, stage)
    device = stage_device(cfg)
    tok = tokenizer_from(up["sft"])
    policy = load_causal_lm(str(up["sft"]), tok, cfg.policy.dtype).to(device).eval()
    proxy = proxy_scorer(cfg, up["proxy"], tok, missing_eos_penalty=0.0).to(device)
    ev = Evaluator(prompt_ids(cfg, tok, texts, role), texts, tok, None, max_new_tokens=cfg.ppo.max_new_tokens,
                   temperature=temperature, top_p=top_p, batch_size=cfg.eval.batch_size)
    res = ev.run(0, policy, None, proxy, device, seed, energy=EnergyRecorder(policy))
    return res.proxy_latents.float().numpy(), res.policy_energy.float().numpy()


def compute_eval_stats(cfg: DictConfig, out: Path, up: dict, fingerprint: str) -> None:
    texts = load_rows(cfg, "eval_prompts")["prompt"][: cfg.eval.n_prompts]
    lat, en = sample_sft(cfg, up, "sft_stats", texts, "eval_prompts", cfg.eval.temperature, cfg.eval.top_p,
                         cfg.seed + REFERENCE_SEED_OFFSET)
    np.save(out / "eval_latents.npy", lat)
    np.save(out / "eval_energy.npy", en)
    log.info("sft_stats: %d eval reference samples", len(texts))


def compute_train_stats(cfg: DictConfig, out: Path, up: dict, fingerprint: str) -> None:
    texts = ppo_prompts(cfg)
    lat, en = sample_sft(cfg, up, "sft_train_stats", texts, "prompts", cfg.ppo.temperature, cfg.ppo.top_p,
                         cfg.seed + 2 * REFERENCE_SEED_OFFSET)
    np.save(out / "train_latents.npy", lat)
    np.save(out / "train_energy.npy", en)
    log.info("sft_train_stats: one SFT sample for each of %d PPO prompts", len(texts))


def load_sft_stats(up: dict) -> SFTStats:
    """The RL stages' view of `sft_stats` and, when built, `sft_train_stats`."""
    stats = SFTStats(np.load(up["sft_stats"] / "eval_latents.npy"), np.load(up["sft_stats"] / "eval_energy.npy"))
    if "sft_train_stats" in up:
        stats.train_latents = np.load(up["sft_train_stats"] / "train_latents.npy")
        stats.train_energy = np.load(up["sft_train_stats"] / "train_energy.npy")
    return stats
