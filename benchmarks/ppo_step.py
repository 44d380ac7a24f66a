"""PPO: rollout tokens/s vs bare `generate`, and the PPO update vs a bare loop, same process.

Same tiny model (a random-init tiny GPT-NeoX stands in for the SFT policy; the speed does not
depend on the weights), same 64 prompts, same sampling (temperature 0.8, top-p 0.9, 13 new
tokens), same update (4 epochs x 2 minibatches, AdamW for policy and critic, grad clipping).

- rollout: inform's `rl.rollout.sample` (what PPOModule calls) vs `model.generate` alone.
- update: `PPOModule.ppo_update` under a Lightning Trainer (manual optimization, two
  optimizers) vs the same math in a plain loop; each timed per call, median of rounds.

    python -m benchmarks.ppo_step [--rounds 5]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader

from benchmarks.common import tiny_cfg
from inform.data import synthetic
from inform.data.collate import PromptBatches, encode_prompts
from inform.models.causal_lm import build_causal_lm
from inform.models.reward_model import RewardModel
from inform.models.scorer import RewardScorer
from inform.models.tokenizer import load_tokenizer
from inform.models.value_model import ValueModel
from inform.modules.ppo import PPOConfig, PPOModule
from inform.rl.losses import policy_loss, value_loss
from inform.rl.rollout import response_logits, response_values, sample, token_logprobs

GEN = dict(max_new_tokens=13, temperature=0.8, top_p=0.9)


def setup(batch: int = 64):
    cfg = tiny_cfg()
    tok = load_tokenizer(cfg.policy)
    policy = build_causal_lm(cfg.policy, tok, seed=0)
    rm = RewardModel.from_causal_lm(build_causal_lm(cfg.policy, tok, seed=1), {"kind": "scalar"})
    prompts = encode_prompts(tok, [r["prompt"] for r in synthetic.prompts(batch, seed=9)], 16)
    batches = PromptBatches(prompts, batch, 1, 0, tok.pad_token_id)
    return cfg, tok, policy, rm, batches[0]


def bench_rollout(policy, tok, batch, rounds: int) -> dict:
    ids, mask = batch["input_ids"], batch["attention_mask"]
    bare, ours, n_tokens = [], [], []
    policy.eval()
    for r in range(rounds):
        torch.manual_seed(r)
        t0 = time.perf_counter()
        with torch.no_grad():
            policy.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, eos_token_id=tok.eos_token_id,
                            pad_token_id=tok.pad_token_id, use_cache=True, **GEN)
        bare.append(time.perf_counter() - t0)
        torch.manual_seed(r)
        t0 = time.perf_counter()
        ro = sample(policy, ids, mask, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, **GEN)
        ours.append(time.perf_counter() - t0)
        n_tokens.append(ro.response_mask.sum().item())
    tokens = statistics.median(n_tokens)
    res = {"bare_tok_s": tokens / statistics.median(bare), "inform_tok_s": tokens / statistics.median(ours)}
    res["ratio"] = res["inform_tok_s"] / res["bare_tok_s"]
    return res


class Timed:
    """Wraps a bound method and records the duration of each call."""

    def __init__(self, fn):
        self.fn, self.times = fn, []

    def __call__(self, *a, **k):
        t0 = time.perf_counter()
        out = self.fn(*a, **k)
        self.times.append(time.perf_counter() - t0)
        return out


def bare_update(policy, critic, exp, c: PPOConfig, rounds: int) -> list[float]:
    """The same update as PPOModule's in plain PyTorch: one AdamW with a policy and a critic
    group, one backward of the two losses, each model's gradient norm clipped on its own."""
    opt = torch.optim.AdamW([{"params": list(policy.parameters()), "lr": c.policy_lr},
                             {"params": list(critic.parameters()), "lr": c.critic_lr}])
    times = []
    for r in range(rounds):
        g = torch.Generator().manual_seed(r)
        t0 = time.perf_counter()
        for _ in range(c.epochs):
            for idx in torch.randperm(exp.rollout.sequences.shape[0], generator=g).chunk(c.minibatches):
                ro, mask = exp.rollout.rows(idx), exp.rollout.response_mask[idx]
                logprobs = token_logprobs(response_logits(policy, ro, c.temperature), ro.responses)
                loss, _ = policy_loss(logprobs, exp.logprobs[idx], exp.advantages[idx], mask, c.clip)
                values = response_values(critic, ro)
                vloss, _ = value_loss(values, exp.values[idx], exp.returns[idx], mask, c.value_clip)
                opt.zero_grad()
                (loss + vloss).backward()
                for group in opt.param_groups:
                    torch.nn.utils.clip_grad_norm_(group["params"], c.max_grad_norm)
                opt.step()
        times.append(time.perf_counter() - t0)
    return times


def bench_update(policy, rm, tok, batch, rounds: int) -> dict:
    c = PPOConfig.from_section(tiny_cfg().ppo, max_new_tokens=16)  # the 16 these timings were taken with
    proxy = RewardScorer(rm, tok, tok)
    module = PPOModule(copy.deepcopy(policy), copy.deepcopy(policy), ValueModel.from_causal_lm(copy.deepcopy(policy)), proxy, tok, c)
    module.ppo_update = Timed(module.ppo_update)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, enable_progress_bar=False)
    trainer.fit(module, DataLoader([batch] * rounds, batch_size=None))
    exp, _ = module.make_experience(batch["input_ids"], batch["attention_mask"], batch["index"])
    bare = bare_update(copy.deepcopy(policy), ValueModel.from_causal_lm(copy.deepcopy(policy)), exp, c, rounds)
    res = {"bare_s": statistics.median(bare[1:]), "inform_s": statistics.median(module.ppo_update.times[1:])}
    res["ratio"] = res["inform_s"] / res["bare_s"]
    return res


def main(rounds: int = 7) -> dict:
    cfg, tok, policy, rm, batch = setup()
    rollout = bench_rollout(policy, tok, batch, rounds)
    update = bench_update(policy, rm, tok, batch, rounds)
    print(f"rollout (64 prompts, 13 new tokens): bare generate {rollout['bare_tok_s']:.0f} tok/s, inform "
          f"{rollout['inform_tok_s']:.0f} tok/s, ratio {rollout['ratio']:.3f} (target >= 0.95)")
    print(f"ppo update (4 epochs x 2 minibatches): bare {update['bare_s'] * 1e3:.0f} ms, inform "
          f"{update['inform_s'] * 1e3:.0f} ms, ratio {update['ratio']:.3f} (target <= 1.15)")
    return {"rollout": rollout, "update": update}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    main(ap.parse_args().rounds)
