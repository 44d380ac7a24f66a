"""CSI's cost: on 20,000 x 128 latents (target <= 3 s on 2 cores), and as a share of the
tiny pipeline's eval step it belongs to (target <= 5%), both measured in this process.

    python -m benchmarks.csi_cost
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from benchmarks.common import tiny_cfg
from inform.data import synthetic
from inform.data.collate import encode_prompts
from inform.detect.csi import cluster_separation_index
from inform.models.causal_lm import build_causal_lm
from inform.models.reward_model import RewardModel
from inform.models.scorer import RewardScorer
from inform.models.tokenizer import load_tokenizer
from inform.rl.evaluate import Evaluator


def latents(n: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """A mixture of 20 Gaussian modes, like policy samples clustered by behaviour."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, dim)) * 3 + shift
    return (centers[rng.integers(0, 20, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def csi_large(n: int = 20000, dim: int = 128, rounds: int = 3) -> dict:
    sft, rlhf = latents(n, dim, 0), latents(n, dim, 1, shift=0.5)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        res = cluster_separation_index(rlhf, sft)
        times.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(times), "n_clusters": res.n_clusters, "noise_frac": res.noise_frac}


def csi_share_of_eval(rounds: int = 3) -> dict:
    cfg = tiny_cfg()
    tok = load_tokenizer(cfg.policy)
    policy, ref = build_causal_lm(cfg.policy, tok, seed=0), build_causal_lm(cfg.policy, tok, seed=0)
    rm = lambda s: RewardModel.from_causal_lm(build_causal_lm(cfg.policy, tok, seed=s), {"kind": "scalar"})  # noqa: E731
    proxy, gold = RewardScorer(rm(1), tok, tok), RewardScorer(rm(2), tok, tok)
    texts = [r["prompt"] for r in synthetic.prompts(256, seed=4)]
    ev = Evaluator(encode_prompts(tok, texts, 16), texts, tok, gold, max_new_tokens=13, temperature=0.8, top_p=0.9,
                   true_reward=synthetic.quality_of_text)
    sft = ev.run(0, policy, ref, proxy, torch.device("cpu"), 1).proxy_latents.double().numpy()
    eval_t, csi_t = [], []
    for r in range(rounds):
        t0 = time.perf_counter()
        result = ev.run(r, policy, ref, proxy, torch.device("cpu"), 0)
        eval_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cluster_separation_index(result.proxy_latents.double().numpy(), sft)
        csi_t.append(time.perf_counter() - t0)
    e, c = statistics.median(eval_t), statistics.median(csi_t)
    return {"eval_seconds": e, "csi_seconds": c, "share": c / (e + c)}


def main() -> dict:
    large = csi_large()
    share = csi_share_of_eval()
    print(f"CSI on 20,000 x 128 latents (DBSCAN, eps by k-distance): {large['seconds']:.2f} s (target <= 3 s), "
          f"{large['n_clusters']} clusters, noise {large['noise_frac']:.2f}")
    print(f"CSI in the tiny eval step (256 samples): eval {share['eval_seconds'] * 1e3:.0f} ms, CSI "
          f"{share['csi_seconds'] * 1e3:.1f} ms, share {100 * share['share']:.2f}% (target <= 5%)")
    return {"large": large, "share": share}


if __name__ == "__main__":
    main()
