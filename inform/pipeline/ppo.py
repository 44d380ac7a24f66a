"""Stage `ppo`: PPO of the SFT policy against the frozen proxy RM, with gold-RM evaluation.

Prompts: the data set's unlabeled instructions after the first `label.n_prompts` (those went
to the label stage). Exports the final policy, the eval history (`eval_history.json`) and
the over-optimization curve (`overoptimization.png`, also a W&B image).
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning.pytorch.strategies import DeepSpeedStrategy
from omegaconf import DictConfig

from inform.data.collate import PromptBatches
from inform.data.rows import load_rows, prompt_ids
from inform.detect.mahalanobis import GaussianStats, fit_gaussian
from inform.models.causal_lm import load_causal_lm
from inform.models.ensemble import EnsembleScorer
from inform.models.reward_model import RewardModel
from inform.models.scorer import RewardScorer
from inform.models.tokenizer import tokenizer_from
from inform.models.value_model import ValueModel
from inform.modules.detector_callback import DetectorCallback
from inform.modules.ppo import PPOModule
from inform.pipeline.label import ppo_prompts
from inform.pipeline.scorers import gold_scorer, proxy_scorer
from inform.pipeline.sft_stats import SFTStats, load_sft_stats, needs_train_stats
from inform.report.curves import plot_overoptimization
from inform.rl.evaluate import Evaluator
from inform.rl.ppo_config import PPOConfig
from inform.runtime import ranks
from inform.runtime.files import write_json
from inform.runtime.run_dir import seed_stage, stage_dir
from inform.runtime.trainer import FullWeights, fit, make_loader, make_trainer, trainable_dtype
from inform.tracking.loggers import finish_loggers, log_image, make_loggers, report

log = logging.getLogger("inform")
CURVE = "overoptimization.png"


def rl_upstream(cfg: DictConfig) -> tuple[str, ...]:
    """What an RL stage (PPO, RLOO) starts from; the SFT policy's statistics on the PPO prompts
    only when a detector or mitigation needs them."""
    return ("sft", "gold", "label", "proxy", "sft_stats") + (("sft_train_stats",) if needs_train_stats(cfg) else ())


def ppo_config(cfg: DictConfig) -> PPOConfig:
    return PPOConfig.from_section(cfg.ppo)


@dataclass
class RLParts:
    """What every RL stage (PPO, RLOO) starts from."""

    tok: object
    policy: torch.nn.Module
    ref: torch.nn.Module
    proxy: RewardScorer | EnsembleScorer
    evaluator: Evaluator
    batches: PromptBatches


def rl_parts(cfg: DictConfig, up: dict, prompts_per_step: int) -> RLParts:
    """Policy and reference from SFT, the proxy and gold scorers, the evaluator, the prompt batches."""
    sft, rm, gold, labels = up["sft"], up["proxy"], up["gold"], up["label"]
    tok = tokenizer_from(sft)
    policy = load_causal_lm(str(sft), tok, trainable_dtype(cfg, cfg.policy), cfg.policy.gradient_checkpointing)
    ref = load_causal_lm(str(sft), tok, cfg.policy.dtype)  # frozen: the preset's dtype (bf16 for the real sizes)
    proxy = proxy_scorer(cfg, rm, tok, cfg.ppo.missing_eos_penalty)
    eval_texts = load_rows(cfg, "eval_prompts")["prompt"][: cfg.eval.n_prompts]
    evaluator = Evaluator(
        prompt_ids(cfg, tok, eval_texts, "eval_prompts"), eval_texts, tok, gold_scorer(cfg, gold, labels, tok),
        max_new_tokens=cfg.ppo.max_new_tokens, temperature=cfg.eval.temperature, top_p=cfg.eval.top_p,
        batch_size=cfg.eval.batch_size, missing_eos_penalty=cfg.eval.missing_eos_penalty, kv_cache=cfg.ppo.kv_cache,
        true_reward=instantiate(cfg.data.true_reward) if cfg.data.true_reward is not None else None,
    )
    prompts = ppo_prompts(cfg)
    if len(prompts) < prompts_per_step:
        raise ValueError(
            f"data.prompts: {len(prompts)} prompts are left for RL after the label stage's; a step needs {prompts_per_step}"
        )
    # several processes: each runs ppo.steps iterations on batches of its own (ResumableSampler splits them)
    steps = cfg.ppo.steps * ranks.world_size()
    batches = PromptBatches(prompt_ids(cfg, tok, prompts, "prompts"), prompts_per_step, steps, cfg.seed, tok.pad_token_id,
                            fixed_width=cfg.ppo.kv_cache == "static")
    return RLParts(tok, policy, ref, proxy, evaluator, batches)


def build_module(cfg: DictConfig, up: dict, stats: SFTStats) -> tuple[PPOModule, PromptBatches]:
    """The four models, the scorers, the evaluator and the prompt batches of a PPO run."""
    parts = rl_parts(cfg, up, cfg.ppo.batch_size)
    sft, rm = up["sft"], up["proxy"]
    if cfg.ppo.critic_init == "reward":
        critic = ValueModel.from_reward_model(RewardModel.from_pretrained(rm[0], trainable_dtype(cfg, cfg.reward)))
    else:
        dtype = trainable_dtype(cfg, cfg.policy)
        critic = ValueModel.from_causal_lm(load_causal_lm(str(sft), parts.tok, dtype, cfg.policy.gradient_checkpointing))
    module = PPOModule(
        parts.policy, parts.ref, critic, parts.proxy, parts.tok, ppo_config(cfg), parts.evaluator, seed=cfg.seed,
        on_nonfinite=cfg.on_nonfinite, gaussian=gaussian_of(cfg, stats), record_energy="energy" in cfg.detect,
        sft_energy=None if stats.train_energy is None else torch.from_numpy(stats.train_energy).float(),
    )
    return module, parts.batches


def gaussian_of(cfg: DictConfig, stats: SFTStats) -> GaussianStats | None:
    """The SFT latents' Gaussian (Mahalanobis, MOP, IBL), fit before training starts."""
    if stats.train_latents is None:
        return None
    m = cfg.detectors.mahalanobis
    return fit_gaussian(stats.train_latents, m.eps, m.shrinkage, m.pca_dim)


def detector_callback(cfg: DictConfig, out_dir: Path, module: PPOModule, stats: SFTStats) -> DetectorCallback:
    return DetectorCallback(
        out_dir, list(cfg.detect), stats.eval_latents, cfg.detectors, cfg.early_stop, sft_energy=stats.eval_energy,
        gaussian=module.gaussian,
    )


def train_ppo(cfg: DictConfig, out: Path, up: dict, fingerprint: str) -> None:
    seed_stage(cfg, "ppo")
    stats = load_sft_stats(up)
    module, batches = build_module(cfg, up, stats)
    fit_and_export(cfg, out, "ppo", module, batches, stats, fingerprint)


def fit_and_export(cfg: DictConfig, out: Path, stage: str, module, batches: PromptBatches, stats: SFTStats, fingerprint: str) -> None:
    """Train an RL module (PPO, RLOO) one prompt batch per step; export the policy, the eval
    history, the over-optimization curve and the metrics."""
    save_dir = stage_dir(cfg, stage)
    loggers = make_loggers(cfg, stage, save_dir)
    full = FullWeights("policy")
    callbacks = [detector_callback(cfg, save_dir / "csi", module, stats)] if cfg.detect else []
    train_dl = make_loader(batches, None, None, shuffle=False, seed=cfg.seed)  # item i = iteration i's prompts
    trainer = make_trainer(
        cfg, stage, save_dir, loggers, [full, *callbacks], train_loader=train_dl, fingerprint=fingerprint, max_epochs=1, max_steps=-1,
        gradient_clip_val=None, limit_val_batches=0, log_every_n_steps=1,
    )
    if isinstance(trainer.strategy, DeepSpeedStrategy):  # manual optimization: the engine does the clipping
        trainer.strategy.config["gradient_clipping"] = cfg.ppo.max_grad_norm
    fit(trainer, module, save_dir, train_dl)
    if ranks.rank() > 0:  # rank 0 exports (inform/runtime/ranks.py)
        return

    module.policy.save_pretrained(out / "policy", state_dict=full.state)
    module.tokenizer.save_pretrained(out / "policy")
    write_json(out / "eval_history.json", {"history": module.eval_history})
    title = f"{stage.upper()}, {cfg.objective.name} proxy, kl_coef {cfg.ppo.kl_coef}, label noise {cfg.label_noise}, seed {cfg.seed}"
    stop = next((cb.stop_step for cb in callbacks if isinstance(cb, DetectorCallback)), None)
    curve = plot_overoptimization(module.eval_history, save_dir / CURVE, title, stop_step=stop)
    shutil.copy(curve, out / CURVE)
    if (save_dir / "csi" / "latents.npz").is_file():
        shutil.copy(save_dir / "csi" / "latents.npz", out / "latents.npz")
    log_image(loggers, "curves/overoptimization", curve, step=module.iteration)
    where = finish_loggers(loggers)
    write_json(out / "metrics.json", {**summarize(module.eval_history), "runs": where})
    report(stage, where, save_dir)
    log.info("%s: over-optimization curve -> %s", stage, save_dir / CURVE)


def summarize(history: list[dict]) -> dict:
    """The final eval, the SFT eval (step 0) and the gold peak."""
    first, last = history[0], history[-1]
    out = {f"final/{k}": v for k, v in last.items()}
    out.update({f"sft/{k}": v for k, v in first.items() if k != "step"})
    if "reward/gold" in first:
        peak = max(history, key=lambda r: r["reward/gold"])
        out.update({"gold_peak/step": peak["step"], "gold_peak/reward": peak["reward/gold"], "gold_peak/kl": peak["eval/kl"]})
    stops = [r for r in history if "early_stop/stop_step" in r]
    if stops:
        out.update({"early_stop/stop_step": stops[0]["step"], "early_stop/stop_kl": stops[0]["eval/kl"],
                    "early_stop/stop_gold": stops[0].get("reward/gold")})
    return out
