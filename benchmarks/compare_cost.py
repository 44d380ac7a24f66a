"""The comparison library's cost (issue 19): the whole analysis of 100 runs (10 methods x 10
seeds) x 26 eval points with 10,000 bootstrap resamples: tidy table, curves on a 26-point KL
grid and at 4 budgets, intervals, paired differences, peaks, Gao fits, and the files
(results.md, CSVs, figure). Target <= 10 s on 2 cores.

    python -m benchmarks.compare_cost
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from inform.report.compare import tidy, write_report

METHODS, SEEDS, EVALS = 10, 10, 26


@dataclass
class FakeRun:
    """The fields of `OfflineRun` that `tidy` reads, with W&B-style history rows."""
    name: str
    config: dict
    history: list = field(default_factory=list)
    job_type: str = "ppo"
    group: str = "bench"
    run_id: str = ""


def sweep(methods: int = METHODS, seeds: int = SEEDS, evals: int = EVALS, seed: int = 0) -> list[FakeRun]:
    """Runs whose gold follows Gao et al.'s RL form, with a per-seed offset shared by every
    method (same SFT and gold RM) and eval noise; a training row between eval rows."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(0.0, 0.3, seeds)
    runs = []
    for m in range(methods):
        alpha, beta, speed = 1.0 + 0.05 * m, 0.5, 0.4 + 0.02 * m
        for s in range(seeds):
            steps = np.arange(evals) * 4
            kl = np.maximum.accumulate(speed * (steps / 4) ** 1.1 * rng.uniform(0.8, 1.2) + rng.normal(0, 0.05, evals))
            kl[0] = 0.0
            d = np.sqrt(np.clip(kl, 0, None))
            gold = offset[s] + d * (alpha - beta * np.log(np.where(d > 0, d, 1))) + rng.normal(0, 0.05, evals)
            history = []
            for t in range(evals):
                history.append({"trainer/global_step": int(steps[t]), "train/loss": float(rng.normal())})
                history.append({"trainer/global_step": int(steps[t]), "eval/kl": float(kl[t]), "reward/gold": float(gold[t]),
                                "reward/proxy_eval": float(gold[t] + 0.1 * d[t] ** 2), "reward/true": float(gold[t])})
            config = {"objective": {"name": "bt" if m == 0 else f"m{m}"}, "kl_coef": 0.05, "seed": s}
            runs.append(FakeRun(f"ppo-m{m}-s{s}", config, history))
    return runs


def main() -> dict:
    runs = sweep()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        table = tidy(runs)
        t_tidy = time.perf_counter() - t0
        paths = write_report(table, out, baseline="bt, kl_coef 0.05", n_boot=10_000)
        total = time.perf_counter() - t0
        md = paths["results_md"].read_text()
    res = paths["results"]
    print(md[: md.index("## Peak")])
    print(f"{len(runs)} runs x {EVALS} eval points, {len(res['grid'])} grid points + {len(res['budgets_kl'])} budgets, "
          f"10,000 resamples: {total:.2f} s (tidy {t_tidy:.2f} s); target <= 10 s")
    return {"seconds": total, "tidy_seconds": t_tidy, "rows": len(table)}


if __name__ == "__main__":
    main()
