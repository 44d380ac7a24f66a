"""PPO with a separate critic (Ouyang et al. 2022; the InfoRM paper's RL stage), one file top to bottom.

Four models: the policy pi (init from SFT), a frozen reference pi_ref (the SFT model), a
critic V on its own backbone, and the frozen proxy reward model. Each training step is one
PPO iteration over a batch of b prompts:

1. rollout (no gradients): sample y ~ pi(. | x) with temperature and top-p (KV cache);
   log pi, log pi_ref and V(s_t) of each response token; score s = RM(x, y), standardized,
   minus the IBL / EPPO penalties when their coefficients are set (rl/mitigations.py), and
   clipped; per-token reward r_t = -kl_coef * (log pi - log pi_ref) (+ s on the last token);
   GAE (gamma, lambda) -> advantages A_t (whitened) and returns R_t.
2. update: `epochs` passes over `minibatches` minibatches of the clipped policy loss plus the
   clipped value loss, one backward and one AdamW step (manual optimization). Policy and critic
   share no parameter, so each gets exactly its own loss's gradient, its own learning rate
   (two parameter groups) and, outside DeepSpeed, its own gradient-norm clip: the same update
   as two optimizers, bit for bit. One optimizer is what Lightning's DeepSpeed strategy takes,
   so policy and critic both train under ZeRO-2/3 (there the engine clips their joint norm).
3. the KL controller (fixed or adaptive) updates kl_coef.
Every `eval_every` iterations, after the last one, and at step 0 (the SFT policy) the
Evaluator samples on held-out prompts and logs gold/proxy reward and KL.

Metrics go to the loggers at step = the number of PPO iterations done, so training and eval
metrics share one axis (`trainer/global_step` in W&B): objective/kl, objective/kl_coef,
objective/entropy, policy/loss, policy/clipfrac, policy/approxkl, critic/loss,
critic/clipfrac, critic/vf_explained_var, reward/proxy, reward/proxy_raw, response/length,
response/eos_rate; rollout/mahalanobis_mean and rollout/energy_gap when their statistics are
given.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy

from inform.detect.energy import EnergyRecorder, sequence_energy
from inform.detect.mahalanobis import GaussianStats, mahalanobis
from inform.models.scorer import RewardScorer
from inform.modules.frozen import drop_frozen, restore_frozen
from inform.modules.optim import all_finite, finite, on_nonfinite
from inform.rl.evaluate import EvalResult, Evaluator
from inform.rl.gae import gae_advantages
from inform.rl.kl import AdaptiveKLController, FixedKLController, kl_penalized_rewards
from inform.rl.losses import policy_loss, value_loss
from inform.rl.masked import explained_variance, masked_mean, masked_whiten
from inform.rl.mitigations import mitigated_scores
from inform.rl.ppo_config import PPOConfig
from inform.rl.rollout import Rollout, response_logits, response_values, sample, token_entropy, token_logprobs


@dataclass
class Experience:
    rollout: Rollout
    logprobs: torch.Tensor  # (b, R) log pi_old
    values: torch.Tensor  # (b, R) V_old
    advantages: torch.Tensor  # (b, R) whitened
    returns: torch.Tensor  # (b, R)


class PPOModule(L.LightningModule):
    def __init__(
        self, policy, ref, critic, proxy: RewardScorer, tokenizer, cfg: PPOConfig, evaluator: Evaluator | None = None,
        seed: int = 0, on_nonfinite: str = "stop", gaussian: GaussianStats | None = None,
        sft_energy: torch.Tensor | None = None, record_energy: bool = False,
    ):
        """`gaussian`: the SFT latents' Gaussian (IBL, and `rollout/mahalanobis_mean`);
        `sft_energy` (n_prompts,): E_sft of each PPO prompt (EPPO); `record_energy`: read the
        policy's energy during the log-prob passes (EPPO, the energy detector)."""
        super().__init__()
        self.automatic_optimization = False
        self.on_nonfinite, self.skipped_nonfinite = on_nonfinite, 0
        self.gaussian, self.sft_energy = gaussian, sft_energy
        if cfg.energy_coef and sft_energy is None:
            raise ValueError("energy_coef > 0 needs the SFT energies of the PPO prompts (the sft_train_stats stage)")
        if cfg.ibl_coef and gaussian is None:
            raise ValueError("ibl_coef > 0 needs the SFT latents' Gaussian (the sft_train_stats stage)")
        self.energy = EnergyRecorder(policy) if (record_energy or cfg.energy_coef) else None
        self.policy, self.ref, self.critic = policy, ref.eval().requires_grad_(False), critic
        self.proxy, self.proxy_model = proxy, proxy.model  # registered so it moves with the module
        self.evaluator = evaluator
        self.gold_model = evaluator.gold.model if evaluator is not None and evaluator.gold is not None else None
        self.tokenizer, self.cfg, self.seed = tokenizer, cfg, seed
        self.kl_ctl = (
            AdaptiveKLController(cfg.kl_coef, cfg.target_kl, cfg.kl_horizon)
            if cfg.kl_controller == "adaptive" else FixedKLController(cfg.kl_coef)
        )
        self.iteration = 0  # PPO iterations done; the step axis of every logged metric
        self.eval_history: list[dict] = []
        self.eval_listeners: list = []  # objects with on_eval(module, EvalResult), e.g. detectors

    # ------------------------------------------------------------------ optimizers
    def configure_optimizers(self):
        c = self.cfg
        return torch.optim.AdamW([
            {"params": list(self.policy.parameters()), "lr": c.policy_lr, "name": "policy"},
            {"params": list(self.critic.parameters()), "lr": c.critic_lr, "name": "critic"},
        ], weight_decay=c.weight_decay)

    def clip_each_model(self, opt) -> None:
        """Clip the policy's and the critic's gradient norms separately at max_grad_norm.
        Under DeepSpeed the engine clips at its `gradient_clipping` (the RL stages set it to
        max_grad_norm), over both models together."""
        if isinstance(self.trainer.strategy, DeepSpeedStrategy):
            return
        for group in opt.param_groups:
            torch.nn.utils.clip_grad_norm_(group["params"], self.cfg.max_grad_norm)

    # ------------------------------------------------------------------ 1. rollout
    @torch.no_grad()
    def make_experience(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, prompt_index: torch.Tensor) -> tuple[Experience | None, dict]:
        c = self.cfg
        ro = sample(
            self.policy, prompt_ids, prompt_mask, max_new_tokens=c.max_new_tokens, temperature=c.temperature,
            top_p=c.top_p, eos_id=self.tokenizer.eos_token_id, pad_id=self.tokenizer.pad_token_id, kv_cache=c.kv_cache,
        )
        mask = ro.response_mask  # (b, R)
        with self.energy.recording() if self.energy is not None else nullcontext():  # the energy of this same pass
            logits = response_logits(self.policy, ro, c.temperature)  # (b, R, V)
        logprobs = token_logprobs(logits, ro.responses)
        ref_logprobs = token_logprobs(response_logits(self.ref, ro, c.temperature), ro.responses)
        values = response_values(self.critic, ro)  # (b, R)
        proxy_out = self.proxy.raw(ro.sequences, ro.attention_mask, ro.prompt_len)
        raw = proxy_out.reward.float()  # (b,)
        if not all_finite(self, raw, logprobs, values):
            on_nonfinite(self, "reward/proxy" if not finite(raw) else "rollout log-probs or values", raw.mean().item())
            return None, {}
        extra, distances, e_policy, e_sft = {}, None, None, None
        if self.gaussian is not None:  # D(z): IBL's penalty, logged whether or not it is applied
            distances = torch.from_numpy(mahalanobis(proxy_out.latent.double().cpu().numpy(), self.gaussian)).to(raw)
            extra["rollout/mahalanobis_mean"] = distances.mean().item()
        if self.energy is not None and self.sft_energy is not None:
            e_policy = sequence_energy(self.energy.energy, mask, ro.responses, self.tokenizer.eos_token_id, ro.prompt_len)
            e_sft = self.sft_energy[prompt_index.cpu()].to(e_policy)
            extra["rollout/energy_gap"] = (e_policy - e_sft).abs().mean().item()
        scores = self.proxy.normalize(raw, ro.has_eos)  # (b,) standardized
        scores = mitigated_scores(scores, c.ibl_coef, distances, c.energy_coef, e_policy, e_sft)  # IBL, EPPO
        scores = scores.clamp(-c.reward_clip, c.reward_clip)
        rewards, kl = kl_penalized_rewards(logprobs, ref_logprobs, scores, mask, self.kl_ctl.value)
        advantages, returns = gae_advantages(rewards, values, mask, c.gamma, c.lam)
        advantages = masked_whiten(advantages, mask)
        stats = {
            "objective/kl": kl.sum(-1).mean().item(),
            "objective/kl_coef": self.kl_ctl.value,
            "objective/entropy": masked_mean(token_entropy(logits), mask).item(),
            "reward/proxy": scores.mean().item(),
            "reward/proxy_raw": raw.mean().item(),
            "reward/proxy_raw_std": raw.std().item(),
            "critic/vf_explained_var": explained_variance(values, returns, mask).item(),
            "response/length": mask.sum(-1).float().mean().item(),
            "response/eos_rate": ro.has_eos.float().mean().item(),
            **extra,
        }
        return Experience(ro, logprobs, values, advantages, returns), stats

    # ------------------------------------------------------------------ 2. update
    def ppo_update(self, exp: Experience) -> dict:
        c = self.cfg
        opt = self.optimizers()
        b = exp.rollout.sequences.shape[0]
        g = torch.Generator().manual_seed(self.seed * 100003 + self.iteration)
        sums: dict[str, float] = {}
        n_updates = 0
        for _ in range(c.epochs):
            for idx in torch.randperm(b, generator=g).chunk(c.minibatches):
                idx = idx.to(exp.logprobs.device)
                ro, mask = exp.rollout.rows(idx), exp.rollout.response_mask[idx]
                # policy: clipped surrogate on whitened advantages
                logprobs = token_logprobs(response_logits(self.policy, ro, c.temperature), ro.responses)
                pg_loss, pg_stats = policy_loss(logprobs, exp.logprobs[idx], exp.advantages[idx], mask, c.clip)
                # critic: clipped value loss towards the GAE returns
                values = response_values(self.critic, ro)
                vf_loss, vf_stats = value_loss(values, exp.values[idx], exp.returns[idx], mask, c.value_clip)
                if not all_finite(self, pg_loss, vf_loss):
                    on_nonfinite(self, "policy/loss" if not finite(pg_loss) else "critic/loss", (pg_loss + vf_loss).item())
                    continue  # on_nonfinite=skip: this minibatch is not applied
                opt.zero_grad()
                self.manual_backward(pg_loss + vf_loss)  # disjoint parameters: policy <- pg_loss, critic <- vf_loss
                self.clip_each_model(opt)
                opt.step()
                for k, v in {"policy/loss": pg_loss, "critic/loss": vf_loss, **pg_stats, **vf_stats}.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                n_updates += 1
        return {k: v / max(n_updates, 1) for k, v in sums.items()}

    def training_step(self, batch, batch_idx):
        exp, stats = self.make_experience(batch["input_ids"], batch["attention_mask"], batch["index"])
        if exp is not None:  # None: a non-finite rollout was skipped (on_nonfinite=skip)
            stats.update(self.ppo_update(exp))
            self.kl_ctl.update(stats["objective/kl"], exp.rollout.sequences.shape[0])
        if self.skipped_nonfinite:
            stats["train/skipped_nonfinite"] = float(self.skipped_nonfinite)
        self.iteration += 1
        if self.iteration % self.cfg.eval_every == 0 or self.iteration == self.trainer.num_training_batches:
            stats.update(self.evaluate(log=False).metrics)
        self.log_metrics(stats)  # one record per step: training and eval metrics together
        for key in ("reward/proxy", "objective/kl"):
            if key in stats:
                self.log(key, stats[key], prog_bar=True, logger=False)

    # ------------------------------------------------------------------ 3. eval and logging
    def log_metrics(self, metrics: dict) -> None:
        """Straight to the loggers, at step = PPO iterations done (the update makes
        epochs x minibatches optimizer steps per iteration, which Lightning's global_step counts)."""
        for lg in self.loggers:
            lg.log_metrics(metrics, step=self.iteration)

    def evaluate(self, log: bool = True) -> EvalResult | None:
        """Eval on the held-out prompts at the current step; listeners (detectors) see the result."""
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
            self.evaluate()  # the SFT policy, step 0

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        drop_frozen(checkpoint)
        checkpoint["ppo"] = {"iteration": self.iteration, "kl_ctl": self.kl_ctl.state_dict(), "eval_history": self.eval_history}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        restore_frozen(self, checkpoint)
        state = checkpoint.get("ppo", {})
        self.iteration = state.get("iteration", 0)
        self.kl_ctl.load_state_dict(state.get("kl_ctl", self.kl_ctl.state_dict()))
        self.eval_history = state.get("eval_history", [])
