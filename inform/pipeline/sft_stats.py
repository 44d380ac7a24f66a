"""Stage `sft_stats`: what the detectors and mitigations compare the policy against, computed
once per (SFT model, proxy RM) and cached like every stage.

- eval reference: the SFT policy's samples on the eval prompts, drawn with another seed than
  the evals': their proxy latents (CSI's SFT cloud) and the SFT model's energy on them
  (`detect/energy_gap`). Files `eval_latents.npy` (n, D), `eval_energy.npy` (n,).
- train statistics, when Mahalanobis/MOP, IBL or EPPO need them: one SFT sample per PPO
  prompt (PPO's sampling settings): proxy latents (the SFT Gaussian of Mahalanobis and IBL)
  and the SFT energies E_sft(x, y_sft) that EPPO compares each rollout with, prompt by prompt.
  Files `train_latents.npy` (m, D), `train_energy.npy` (m,).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from inform.detect.energy import EnergyRecorder
from inform.models.causal_lm import load_causal_lm
from inform.models.tokenizer import tokenizer_from
from inform.pipeline import common
from inform.pipeline.cache import build_once, plain, spec_hash
from inform.pipeline.label import ppo_prompts
from inform.pipeline.scorers import ensure_proxy, proxy_scorer, proxy_spec
from inform.pipeline.sft import ensure_sft, sft_spec
from inform.rl.evaluate import Evaluator

log = logging.getLogger("inform")
REFERENCE_SEED_OFFSET = 1  # the eval reference is sampled with seed + 1, the evals with seed


@dataclass
class SFTStats:
    eval_latents: np.ndarray  # (n_eval, D)
    eval_energy: np.ndarray  # (n_eval,)
    train_latents: np.ndarray | None = None  # (n_ppo_prompts, D)
    train_energy: np.ndarray | None = None  # (n_ppo_prompts,)


def needs_train_stats(cfg: DictConfig) -> bool:
    return "mahalanobis" in cfg.detect or cfg.ibl_coef > 0 or cfg.energy_coef > 0


def stats_spec(cfg: DictConfig) -> dict:
    return {
        "sft": spec_hash(sft_spec(cfg)), "rm": proxy_spec(cfg), "seed": cfg.seed, "eval": plain(cfg.eval),
        "eval_prompts": plain(cfg.data.eval_prompts), "prompts": plain(cfg.data.prompts),
        "label_prompts": plain(cfg.data.label_prompts), "n_label_prompts": cfg.label.n_prompts,
        "sampling": [cfg.ppo.temperature, cfg.ppo.top_p, cfg.ppo.max_new_tokens],
        "max_tokens": [cfg.data.max_prompt_tokens, cfg.data.max_response_tokens], "train": needs_train_stats(cfg),
    }


def compute_stats(cfg: DictConfig, out: Path, sft: Path, rm: list[Path]) -> None:
    common.seed_stage(cfg, "sft_stats")
    device = common.stage_device(cfg)
    tok = tokenizer_from(sft)
    policy = load_causal_lm(str(sft), tok, cfg.policy.dtype).to(device).eval()
    proxy = proxy_scorer(cfg, rm, tok, missing_eos_penalty=0.0).to(device)
    energy = EnergyRecorder(policy)

    def samples(texts: list[str], role: str, temperature: float, top_p: float, seed: int):
        ev = Evaluator(common.prompt_ids(cfg, tok, texts, role), texts, tok, None, max_new_tokens=cfg.ppo.max_new_tokens,
                       temperature=temperature, top_p=top_p, batch_size=cfg.eval.batch_size)
        res = ev.run(0, policy, None, proxy, device, seed, energy=energy)
        return res.proxy_latents.float().numpy(), res.policy_energy.float().numpy()

    eval_texts = common.load_rows(cfg, "eval_prompts")["prompt"][: cfg.eval.n_prompts]
    lat, en = samples(eval_texts, "eval_prompts", cfg.eval.temperature, cfg.eval.top_p, cfg.seed + REFERENCE_SEED_OFFSET)
    np.save(out / "eval_latents.npy", lat)
    np.save(out / "eval_energy.npy", en)
    if needs_train_stats(cfg):
        lat, en = samples(ppo_prompts(cfg), "prompts", cfg.ppo.temperature, cfg.ppo.top_p, cfg.seed + 2 * REFERENCE_SEED_OFFSET)
        np.save(out / "train_latents.npy", lat)
        np.save(out / "train_energy.npy", en)
    log.info("sft_stats: %d eval reference samples%s", len(eval_texts), ", one SFT sample per PPO prompt" if needs_train_stats(cfg) else "")


def ensure_sft_stats(cfg: DictConfig) -> Path:
    sft, rm = ensure_sft(cfg), ensure_proxy(cfg)
    return build_once(cfg.paths.artifacts, "sft_stats", stats_spec(cfg), lambda out: compute_stats(cfg, out, sft, rm), trains=False)


def load_sft_stats(path: Path) -> SFTStats:
    path = Path(path)
    opt = lambda name: np.load(path / name) if (path / name).is_file() else None  # noqa: E731
    return SFTStats(np.load(path / "eval_latents.npy"), np.load(path / "eval_energy.npy"), opt("train_latents.npy"), opt("train_energy.npy"))

