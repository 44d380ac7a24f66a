"""Reward-model training step: inform's RewardModule under a Lightning Trainer vs. a bare loop.

Same model (tiny GPT-NeoX + scalar head), same batch (64 synthetic preference pairs), same
optimizer (AdamW, grad clipping 1.0), same process. Per-step time is the median gap between
consecutive step starts, so it includes the Trainer's loop, logging and progress bar.
Rounds alternate the two so drift on a noisy machine hits both. Prints the ratio.

    python -m benchmarks.rm_step [--steps 60] [--rounds 3] [--pairs 64]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from benchmarks.common import tiny_cfg
from inform.data import synthetic
from inform.data.collate import PreferenceCollator, encode_prompts, encode_responses
from inform.models.causal_lm import build_causal_lm
from inform.models.reward_model import RewardModel
from inform.models.tokenizer import load_tokenizer
from inform.modules.reward import RewardModule
from inform.objectives import bt_loss


class StepClock(Callback):
    def __init__(self):
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(time.perf_counter())


def median_gap(starts: list[float], skip: int = 5) -> float:
    s = starts[skip:]
    return statistics.median(b - a for a, b in zip(s, s[1:]))


def make_batch(tok, pairs: int, cfg):
    rows = synthetic.human_preferences(pairs, seed=11)
    p = encode_prompts(tok, [r["prompt"] for r in rows], cfg.data.max_prompt_tokens)
    c = encode_responses(tok, [r["chosen"] for r in rows], cfg.data.max_response_tokens)
    r = encode_responses(tok, [r["rejected"] for r in rows], cfg.data.max_response_tokens)
    return PreferenceCollator(tok.pad_token_id)(list(zip(p, c, r)))


def lightning_step(model, batch, steps: int) -> float:
    module = RewardModule(copy.deepcopy(model), bt_loss, lr=3e-4, warmup_steps=1)
    clock = StepClock()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
        callbacks=[clock], enable_model_summary=False, gradient_clip_val=1.0, log_every_n_steps=10,
        enable_progress_bar=True,
    )
    trainer.fit(module, DataLoader([batch] * steps, batch_size=None))
    return median_gap(clock.starts)


def bare_step(model, batch, steps: int) -> float:
    model = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95))
    starts = []
    for _ in range(steps):
        starts.append(time.perf_counter())
        out = model(batch["input_ids"], batch["attention_mask"])
        b = out.reward.shape[0] // 2
        loss, _ = bt_loss(out.rows(slice(0, b)), out.rows(slice(b, None)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return median_gap(starts)


def main(steps: int = 60, rounds: int = 3, pairs: int = 64) -> dict:
    cfg = tiny_cfg()
    tok = load_tokenizer(cfg.policy)
    torch.manual_seed(0)
    model = RewardModel.from_causal_lm(build_causal_lm(cfg.policy, tok, seed=0), {"kind": "scalar"})
    batch = make_batch(tok, pairs, cfg)
    lit, bare = [], []
    for _ in range(rounds):
        bare.append(bare_step(model, batch, steps))
        lit.append(lightning_step(model, batch, steps))
    result = {
        "bare_ms": 1e3 * statistics.median(bare),
        "inform_ms": 1e3 * statistics.median(lit),
    }
    result["ratio"] = result["inform_ms"] / result["bare_ms"]
    print(f"rm step ({pairs} pairs, tiny): bare {result['bare_ms']:.1f} ms, inform {result['inform_ms']:.1f} ms, "
          f"ratio {result['ratio']:.3f} (target <= 1.10)")
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=64)
    a = ap.parse_args()
    main(a.steps, a.rounds, a.pairs)
