"""RLOO: REINFORCE with a leave-one-out baseline (the BSR paper's RL stage), one file top to bottom.

Three models: the policy pi (init from SFT), a frozen reference pi_ref and the frozen proxy
reward model; no critic. Each training step is one iteration over b prompts:

1. rollout (no gradients): each prompt repeated k times, y ~ pi(. | x) with temperature and
   top-p; log pi and log pi_ref of each response token; score s = RM(x, y), standardized and
   clipped; sequence reward R_i = s_i - kl_coef * sum_t (log pi - log pi_ref); leave-one-out
   advantage A_i = R_i - mean of the other k - 1 rewards of the same prompt (rl/rloo.py).
2. update: `epochs` passes over `minibatches` minibatches of the clipped surrogate with A_i on
   every token of response i (one epoch and one minibatch: exactly REINFORCE with the LOO
   baseline, since the ratio is 1).
Eval, detectors, early stopping and the metrics' step axis are PPO's (modules/ppo.py):
objective/kl, objective/entropy, policy/loss, policy/clipfrac, policy/approxkl,
reward/proxy, reward/proxy_raw, rloo/advantage_std, response/length, response/eos_rate.
"""
from __future__ import annotations

import lightning as L
import torch

from inform.detect.energy import EnergyRecorder
from inform.detect.mahalanobis import GaussianStats
from inform.models.scorer import RewardScorer
from inform.modules.frozen import drop_frozen, restore_frozen
from inform.modules.optim import all_finite, finite, on_nonfinite
from inform.rl.evaluate import EvalResult, Evaluator
from inform.rl.kl import FixedKLController
from inform.rl.losses import policy_loss
from inform.rl.masked import masked_mean
from inform.rl.ppo_config import PPOConfig
from inform.rl.rloo import rloo_advantages
from inform.rl.rollout import response_logits, sample, token_entropy, token_logprobs


class RLOOModule(L.LightningModule):
    def __init__(
        self, policy, ref, proxy: RewardScorer, tokenizer, cfg: PPOConfig, k: int = 4, evaluator: Evaluator | None = None,
        seed: int = 0, on_nonfinite: str = "stop", gaussian: GaussianStats | None = None, record_energy: bool = False,
    ):
        """`cfg`: the `ppo` section's sampling, KL, learning-rate and update keys (critic keys
        unused); `k`: samples per prompt; `gaussian`/`record_energy`: for the detectors."""
        super().__init__()
        self.automatic_optimization = False
        self.on_nonfinite, self.skipped_nonfinite = on_nonfinite, 0
        self.policy, self.ref = policy, ref.eval().requires_grad_(False)
        self.proxy, self.proxy_model = proxy, proxy.model  # registered so it moves with the module
        self.evaluator = evaluator
        self.gold_model = evaluator.gold.model if evaluator is not None and evaluator.gold is not None else None
        self.tokenizer, self.cfg, self.k, self.seed = tokenizer, cfg, k, seed
        self.gaussian = gaussian
        self.energy = EnergyRecorder(policy) if record_energy else None
        self.kl_ctl = FixedKLController(cfg.kl_coef)
        self.iteration = 0
        self.eval_history: list[dict] = []
        self.eval_listeners: list = []

    def configure_optimizers(self):
        return torch.optim.AdamW(self.policy.parameters(), lr=self.cfg.policy_lr, weight_decay=self.cfg.weight_decay)

    # ------------------------------------------------------------------ 1. rollout
    @torch.no_grad()
    def make_experience(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor):
        c, k = self.cfg, self.k
        ids, pmask = prompt_ids.repeat_interleave(k, 0), prompt_mask.repeat_interleave(k, 0)  # (b k, P)
        ro = sample(
            self.policy, ids, pmask, max_new_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p,
            eos_id=self.tokenizer.eos_token_id, pad_id=self.tokenizer.pad_token_id, kv_cache=c.kv_cache,
        )
        mask = ro.response_mask  # (b k, R)
        logits = response_logits(self.policy, ro, c.temperature)  # (b k, R, V)
        logprobs = token_logprobs(logits, ro.responses)
        ref_logprobs = token_logprobs(response_logits(self.ref, ro, c.temperature), ro.responses)
        raw = self.proxy.raw(ro.sequences, ro.attention_mask, ro.prompt_len).reward.float()  # (b k,)
        if not all_finite(self, raw, logprobs):
            on_nonfinite(self, "reward/proxy" if not finite(raw) else "rollout log-probs", raw.mean().item())
            return None, {}
        scores = self.proxy.normalize(raw, ro.has_eos).clamp(-c.reward_clip, c.reward_clip)  # (b k,)
        kl = ((logprobs - ref_logprobs) * mask).sum(-1)  # (b k,)
        rewards = scores - self.kl_ctl.value * kl  # (b k,) R_i
        _, advantages = rloo_advantages(rewards, k)  # (b k,)
        stats = {
            "objective/kl": kl.mean().item(),
            "objective/kl_coef": self.kl_ctl.value,
            "objective/entropy": masked_mean(token_entropy(logits), mask).item(),
            "reward/proxy": scores.mean().item(),
            "reward/proxy_raw": raw.mean().item(),
            "rloo/reward": rewards.mean().item(),
            "rloo/advantage_std": advantages.std().item(),
            "response/length": mask.sum(-1).float().mean().item(),
            "response/eos_rate": ro.has_eos.float().mean().item(),
        }
        return (ro, logprobs, advantages), stats

    # ------------------------------------------------------------------ 2. update
    def update(self, ro, old_logprobs: torch.Tensor, advantages: torch.Tensor) -> dict:
        c = self.cfg
        opt = self.optimizers()
        n = ro.sequences.shape[0]
        g = torch.Generator().manual_seed(self.seed * 100003 + self.iteration)
        sums, n_updates = {}, 0
        for _ in range(c.epochs):
            for idx in torch.randperm(n, generator=g).chunk(c.minibatches):
                idx = idx.to(old_logprobs.device)
                part, mask = ro.rows(idx), ro.response_mask[idx]
                logprobs = token_logprobs(response_logits(self.policy, part, c.temperature), part.responses)
                adv = advantages[idx, None].expand_as(logprobs)  # (m, R): A_i on every token of response i
                loss, pg_stats = policy_loss(logprobs, old_logprobs[idx], adv, mask, c.clip)
                if not all_finite(self, loss):
                    on_nonfinite(self, "policy/loss", loss.item())
                    continue
                opt.zero_grad()
                self.manual_backward(loss)
                self.clip_gradients(opt, gradient_clip_val=c.max_grad_norm, gradient_clip_algorithm="norm")
                opt.step()
                for key, v in {"policy/loss": loss, **pg_stats}.items():
                    sums[key] = sums.get(key, 0.0) + float(v.detach())
                n_updates += 1
        return {key: v / max(n_updates, 1) for key, v in sums.items()}

    def training_step(self, batch, batch_idx):
        exp, stats = self.make_experience(batch["input_ids"], batch["attention_mask"])
        if exp is not None:
            stats.update(self.update(*exp))
        if self.skipped_nonfinite:
            stats["train/skipped_nonfinite"] = float(self.skipped_nonfinite)
        self.iteration += 1
        if self.iteration % self.cfg.eval_every == 0 or self.iteration == self.trainer.num_training_batches:
            stats.update(self.evaluate(log=False).metrics)
        self.log_metrics(stats)
        for key in ("reward/proxy", "objective/kl"):
            if key in stats:
                self.log(key, stats[key], prog_bar=True, logger=False)

    # ------------------------------------------------------------------ 3. eval, logging, checkpoints (as PPO)
    def log_metrics(self, metrics: dict) -> None:
        for lg in self.loggers:
            lg.log_metrics(metrics, step=self.iteration)

    def evaluate(self, log: bool = True) -> EvalResult | None:
        if self.evaluator is None:
            return EvalResult(self.iteration, {}, torch.empty(0))
        result = self.evaluator.run(self.iteration, self.policy, self.ref, self.proxy, self.device, self.seed, energy=self.energy)
        for listener in self.eval_listeners:
            result.metrics.update(listener.on_eval(self, result) or {})
        self.eval_history.append({"step": self.iteration, **result.metrics})
        if log:
            self.log_metrics(result.metrics)
        return result

    def on_train_start(self):
        if self.iteration == 0 and not self.eval_history:
            self.evaluate()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        drop_frozen(checkpoint)
        checkpoint["rloo"] = {"iteration": self.iteration, "eval_history": self.eval_history}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        restore_frozen(self, checkpoint)
        state = checkpoint.get("rloo", {})
        self.iteration = state.get("iteration", 0)
        self.eval_history = state.get("eval_history", [])
