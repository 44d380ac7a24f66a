"""The detectors' cost: all three on 20,000 x 128 latents against the eval step they would
belong to, and the energy hook's overhead on a PPO step; each measured in this process.

    python -m benchmarks.detectors_cost
"""
from __future__ import annotations

import copy
import statistics
import time

import numpy as np
import torch

from benchmarks.csi_cost import latents
from benchmarks.ppo_step import setup
from inform.detect.csi import cluster_separation_index
from inform.detect.mahalanobis import fit_gaussian, mahalanobis, mop
from inform.models.scorer import RewardScorer
from inform.models.value_model import ValueModel
from inform.modules.ppo import PPOModule
from inform.rl.ppo_config import PPOConfig


def detectors_on(rlhf: np.ndarray, sft: np.ndarray, e_pol: np.ndarray, e_sft: np.ndarray) -> dict[str, float]:
    """Seconds of each detector on one eval step's latents (the Gaussian is fit once per run, not here)."""
    gaussian = fit_gaussian(sft)
    out = {}
    t0 = time.perf_counter()
    cluster_separation_index(rlhf, sft)
    out["csi"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mop(mahalanobis(rlhf, gaussian), gaussian.dim)
    out["mahalanobis"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    float(np.abs(e_pol - e_sft).mean())
    out["energy"] = time.perf_counter() - t0
    return out


def energy_hook_overhead(rounds: int = 21) -> dict:
    """One PPO iteration (rollout + update) with and without the energy hook, alternating."""
    cfg, tok, policy, rm, batch = setup()
    ppo_cfg = PPOConfig.from_section(cfg.ppo, max_new_tokens=16)  # the 16 these timings were taken with
    times = {False: [], True: []}
    for r in range(rounds):
        for record in (False, True):
            module = PPOModule(copy.deepcopy(policy), copy.deepcopy(policy), ValueModel.from_causal_lm(copy.deepcopy(policy)),
                               RewardScorer(rm, tok, tok), tok, ppo_cfg, record_energy=record)
            torch.manual_seed(r)
            t0 = time.perf_counter()
            exp, _ = module.make_experience(batch["input_ids"], batch["attention_mask"], batch["index"])
            times[record].append(time.perf_counter() - t0)
    bare, hooked = statistics.median(times[False][1:]), statistics.median(times[True][1:])
    return {"rollout_s": bare, "rollout_with_hook_s": hooked, "overhead": hooked / bare - 1.0}


def main() -> dict:
    n, d = 20000, 128
    rlhf, sft = latents(n, d, 1, shift=0.5).astype(np.float64), latents(n, d, 0).astype(np.float64)
    e_pol, e_sft = np.random.default_rng(0).random(n), np.random.default_rng(1).random(n)
    cost = detectors_on(rlhf, sft, e_pol, e_sft)
    total = sum(cost.values())
    # the eval step of 20,000 tiny-model samples: sampling, proxy, gold, reference, exact scoring,
    # scaled from benchmarks/csi_cost.py's 256-sample eval step (linear in the samples)
    from benchmarks.csi_cost import csi_share_of_eval

    eval_256 = csi_share_of_eval()["eval_seconds"]
    eval_s = eval_256 / 256 * n
    small = [detectors_on(rlhf[i * 256 : (i + 1) * 256], sft[:256], e_pol[:256], e_sft[:256]) for i in range(5)]
    small_total = statistics.median(sum(c.values()) for c in small)
    hook = energy_hook_overhead()
    print(f"detectors on {n:,} x {d} latents: " + ", ".join(f"{k} {v:.2f} s" for k, v in cost.items())
          + f"; all {total:.2f} s = {100 * total / (eval_s + total):.1f}% of a {eval_s:.0f} s tiny-model eval step of {n:,} samples (target <= 5%)")
    print(f"detectors on the tiny pipeline's 256 eval samples: {1e3 * small_total:.1f} ms = "
          f"{100 * small_total / (eval_256 + small_total):.1f}% of its {1e3 * eval_256:.0f} ms eval step")
    print(f"energy hook on a PPO rollout (64 prompts): {1e3 * hook['rollout_s']:.1f} ms -> {1e3 * hook['rollout_with_hook_s']:.1f} ms, "
          f"overhead {100 * hook['overhead']:+.1f}% (target <= 2%)")
    return {"detectors_s": cost, "eval_s_20k": eval_s, "share": total / (eval_s + total),
            "share_256": small_total / (eval_256 + small_total), "energy_hook": hook}


if __name__ == "__main__":
    main()
