"""Evaluation of a policy on held-out prompts: proxy, gold and true reward, KL to the reference.

Run by the PPO module at step 0 (the SFT policy) and every `eval_every` steps. The samples'
reward-model latents (IB `mu`, or the last hidden state) are kept for the detectors.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch

from inform.data.collate import PromptCollator
from inform.detect.energy import EnergyRecorder, sequence_energy
from inform.models.scorer import RewardScorer
from inform.rl.rollout import Rollout, response_logits, sample, token_logprobs


@dataclass
class EvalResult:
    step: int
    metrics: dict[str, float]
    proxy_latents: torch.Tensor  # (n, D) the proxy RM's latents of the eval samples
    responses: list[str] = field(default_factory=list)
    policy_energy: torch.Tensor | None = None  # (n,) the policy's last-MLP energy on its samples


class Evaluator:
    """Samples on the eval prompts and scores them.

    Metrics: `reward/gold` (gold RM, standardized on the SFT label samples, minus the
    missing-EOS penalty), `reward/proxy_eval` (the proxy's normalized score), `reward/true`
    (the task's exact quality when the data set has one, same penalty), `eval/kl`
    (mean over samples of sum_t log pi - log pi_ref), `eval/response_len`, `eval/eos_rate`.
    """

    def __init__(
        self, prompts: list[list[int]], prompt_texts: list[str], tokenizer, gold: RewardScorer | None, *,
        max_new_tokens: int, temperature: float, top_p: float, batch_size: int = 256,
        true_reward: Callable[[str, str], float] | None = None, missing_eos_penalty: float = 0.5, kv_cache: str = "dynamic",
    ):
        self.prompts, self.prompt_texts, self.tokenizer, self.gold = prompts, prompt_texts, tokenizer, gold
        self.max_new_tokens, self.temperature, self.top_p, self.batch_size = max_new_tokens, temperature, top_p, batch_size
        self.true_reward, self.missing_eos_penalty, self.kv_cache = true_reward, missing_eos_penalty, kv_cache
        # a static cache compiles its decoding step per shape: every eval batch gets the longest prompt's width
        self.collate = PromptCollator(tokenizer.pad_token_id, max(map(len, prompts), default=0) if kv_cache == "static" else None)

    @torch.no_grad()
    def run(
        self, step: int, policy, ref, proxy: RewardScorer, device: torch.device, generator_seed: int,
        energy: EnergyRecorder | None = None,
    ) -> EvalResult:
        """Sample on every eval prompt and score; `energy` (a recorder on `policy`) also reads the
        policy's energy during the log-prob pass the eval makes anyway."""
        sums: dict[str, float] = {}
        latents, texts, energies = [], [], []
        n = len(self.prompts)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(generator_seed)  # the same sampling noise at every eval step
            for start in range(0, n, self.batch_size):
                batch = self.collate([(i, self.prompts[i]) for i in range(start, min(n, start + self.batch_size))])
                ro = sample(
                    policy, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                    max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                    eos_id=self.tokenizer.eos_token_id, pad_id=self.tokenizer.pad_token_id, kv_cache=self.kv_cache,
                )
                for k, v in self._score(ro, batch["index"].tolist(), policy, ref, proxy, latents, texts, energy, energies).items():
                    sums[k] = sums.get(k, 0.0) + v
        metrics = {k: v / n for k, v in sums.items()}
        return EvalResult(step, metrics, torch.cat(latents), texts, torch.cat(energies) if energies else None)

    def _score(
        self, ro: Rollout, index: list[int], policy, ref, proxy: RewardScorer, latents: list, texts: list,
        energy: EnergyRecorder | None = None, energies: list | None = None,
    ) -> dict[str, float]:
        """Sums over this batch (divided by n by the caller)."""
        mask = ro.response_mask
        with energy.recording() if energy is not None else nullcontext():
            logp = token_logprobs(response_logits(policy, ro, self.temperature), ro.responses)
        if energy is not None:
            energies.append(sequence_energy(energy.energy, mask, ro.responses, self.tokenizer.eos_token_id, ro.prompt_len).cpu())
        if ref is not None:
            ref_logp = token_logprobs(response_logits(ref, ro, self.temperature), ro.responses)
            kl = ((logp - ref_logp) * mask).sum(-1)  # (b,)
        else:  # the reference itself (SFT statistics): KL 0 by definition
            kl = torch.zeros(mask.shape[0], device=mask.device)
        proxy_out = proxy.raw(ro.sequences, ro.attention_mask, ro.prompt_len)
        latents.append(proxy_out.latent.float().cpu())
        out = {
            "reward/proxy_eval": proxy.normalize(proxy_out.reward, ro.has_eos).sum().item(),
            "reward/proxy_raw_eval": proxy_out.reward.sum().item(),
            "eval/kl": kl.sum().item(),
            "eval/response_len": mask.sum().item(),
            "eval/eos_rate": ro.has_eos.float().sum().item(),
        }
        if self.gold is not None:
            gold = self.gold.raw(ro.sequences, ro.attention_mask, ro.prompt_len).reward
            out["reward/gold"] = self.gold.normalize(gold, ro.has_eos).sum().item()
        responses = [self.tokenizer.decode(r[m.bool()], skip_special_tokens=True) for r, m in zip(ro.responses, mask)]
        texts.extend(responses)
        if self.true_reward is not None:
            penalty = self.missing_eos_penalty * (~ro.has_eos).float()
            true = torch.tensor([self.true_reward(self.prompt_texts[i], r) for i, r in zip(index, responses)])
            out["reward/true"] = (true - penalty.cpu()).sum().item()
        return out


