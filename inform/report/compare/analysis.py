"""The comparison of a sweep's methods, as tables (lists of dict rows): what ran, each method's
curve on a KL grid, the paired difference to a baseline, gold at KL budgets, the peak, and the
fits of Gao et al. Every cell says how many runs (or seed pairs) it rests on.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from inform.report.compare.gao import fit_run, gao_peak
from inform.report.compare.kl import BUDGETS, kl_grid, on_kl_grid, peak
from inform.report.compare.stats import LEVEL, N_BOOT, bootstrap, paired_difference, summarize
from inform.report.compare.table import Curve, curves

GOLD = "reward/gold"


def method_order(runs: dict[str, dict[Any, Curve]], baseline: str | None = None) -> list[str]:
    """The baseline first, then the other methods by name."""
    return sorted(runs, key=lambda m: (m != baseline, m))


def _seed_key(seed: Any) -> tuple:
    """Numbers in order, then anything else by its text."""
    return (0, seed, "") if isinstance(seed, (int, float)) else (1, 0, str(seed))


def on_grid(runs: dict[Any, Curve], seeds: list, grid: np.ndarray, key: str = GOLD) -> np.ndarray:
    """(n_seeds, g): each seed's run on the KL grid (NaN: not reached, or no run for that seed)."""
    out = np.full((len(seeds), len(grid)), np.nan)
    for i, s in enumerate(seeds):
        if s in runs:
            out[i] = on_kl_grid(runs[s].kl, runs[s].values[key], grid)
    return out


def coverage(runs: dict[str, dict[Any, Curve]], baseline: str | None = None, expected_seeds=None,
             expected_methods=()) -> list[dict]:
    """Per method: its runs, their seeds, and the seeds it lacks: those of `expected_seeds`
    (the sweep's, e.g. range(10)) or, when None, those any other method ran. A method of
    `expected_methods` with no run at all gets a row with 0 runs (a partial sweep says what
    is missing)."""
    every = sorted(expected_seeds if expected_seeds is not None else {s for m in runs.values() for s in m}, key=_seed_key)
    rows = [{"method": m, "runs": len(runs[m]), "seeds": sorted(runs[m], key=_seed_key),
             "missing_seeds": [s for s in every if s not in runs[m]]} for m in method_order(runs, baseline)]
    return rows + [{"method": m, "runs": 0, "seeds": [], "missing_seeds": list(every)} for m in expected_methods if m not in runs]


def levels(runs: dict[str, dict[Any, Curve]], grid, key: str = GOLD, baseline: str | None = None, **boot) -> list[dict]:
    """Per method and KL point k: n_runs, n_reached (the runs that reached k) and
    `stats.summarize` of their values at k (mean, IQM, intervals over seeds)."""
    grid = np.asarray(grid, dtype=float)
    rows = []
    for m in method_order(runs, baseline):
        seeds = sorted(runs[m], key=_seed_key)
        y = on_grid(runs[m], seeds, grid, key)  # (n, g)
        for j, k in enumerate(grid):
            s = summarize(y[:, j], **boot)
            rows.append({"method": m, "kl": float(k), "n_runs": len(seeds), "n_reached": s.pop("n"), **s})
    return rows


def differences(runs: dict[str, dict[Any, Curve]], baseline: str, grid, key: str = GOLD, **boot) -> list[dict]:
    """Per method other than `baseline` and KL point k: the paired difference to the baseline
    over the seeds both ran and both reached k (`stats.paired_difference`)."""
    if baseline not in runs:
        raise ValueError(f"baseline {baseline!r} is not among the methods {sorted(runs)}")
    grid = np.asarray(grid, dtype=float)
    rows = []
    for m in method_order(runs, baseline)[1:]:
        seeds = sorted(set(runs[m]) & set(runs[baseline]), key=_seed_key)
        x, y = on_grid(runs[m], seeds, grid, key), on_grid(runs[baseline], seeds, grid, key)
        for j, k in enumerate(grid):
            rows.append({"method": m, "baseline": baseline, "kl": float(k), **paired_difference(x[:, j], y[:, j], **boot)})
    return rows


def peaks(runs: dict[str, dict[Any, Curve]], key: str = GOLD, baseline: str | None = None, **boot) -> list[dict]:
    """Per method: each run's peak of `key` over its eval points and the KL there, summarized
    over seeds (`peak_*`, `kl_at_peak_*`), and the paired difference of the peak to the
    baseline (`diff*`, `poi*`, over the seeds both ran)."""
    rows = []
    base = {s: peak(c.kl, c.values[key])[0] for s, c in runs.get(baseline, {}).items()}
    for m in method_order(runs, baseline):
        seeds = sorted(runs[m], key=_seed_key)
        value, kl = np.array([peak(runs[m][s].kl, runs[m][s].values[key]) for s in seeds]).reshape(-1, 2).T
        row = {"method": m, "n_runs": len(seeds)}
        row.update({f"peak_{k}": v for k, v in summarize(value, **boot).items()})
        row.update({f"kl_at_peak_{k}": v for k, v in summarize(kl, **boot).items()})
        if baseline in runs and m != baseline:
            both = [s for s in seeds if s in base]
            row.update(paired_difference(value[[seeds.index(s) for s in both]], np.array([base[s] for s in both]), **boot))
        rows.append(row)
    return rows


def _fit_stats(form: str):
    def stat(xs: np.ndarray) -> np.ndarray:
        """(B, n, 2) per-run (alpha, beta) -> (B, 3): mean alpha, mean beta, and KL* of the
        mean curve. R is linear in (alpha, beta), so the mean of the seeds' fitted curves is
        the curve of (mean alpha, mean beta), and KL* is that curve's peak."""
        a, b = xs[..., 0].mean(axis=1), xs[..., 1].mean(axis=1)
        return np.stack([a, b, gao_peak(a, b, form)[0]], axis=1)
    return stat


def fits(runs: dict[str, dict[Any, Curve]], form: str = "rl", key: str = GOLD, baseline: str | None = None,
         n_boot: int = N_BOOT, level: float = LEVEL, method: str = "expanded", seed: int = 0) -> list[dict]:
    """Per method: Gao et al.'s form fitted to each run (gold from its step-0 value), then
    alpha, beta and the fitted peak KL* over seeds with their intervals; n_fitted counts the
    runs with a fit (two or more eval points at KL > 0)."""
    rows = []
    for m in method_order(runs, baseline):
        ab = np.array([fit_run(c.kl, c.values[key], form) for c in runs[m].values()]).reshape(-1, 2)
        ab = ab[np.isfinite(ab).all(axis=1)]
        row = {"method": m, "form": form, "n_runs": len(runs[m]), "n_fitted": len(ab)}
        names = ("alpha", "beta", "kl_star")
        if len(ab):
            est, lo, hi = bootstrap(ab, _fit_stats(form), n_boot, level, method, seed)
            for i, name in enumerate(names):
                row.update({name: float(est[i]), f"{name}_lo": float(lo[i]), f"{name}_hi": float(hi[i])})
        else:
            row.update({f"{name}{s}": np.nan for name in names for s in ("", "_lo", "_hi")})
        rows.append(row)
    return rows


def compare(table: list[dict[str, Any]], baseline: str, grid=None, budgets=BUDGETS, key: str = GOLD, form: str = "rl",
            n_boot: int = N_BOOT, level: float = LEVEL, method: str = "expanded", seed: int = 0, expected_seeds=None,
            expected_methods=()) -> dict[str, Any]:
    """The whole comparison of a tidy table (`table.tidy`) against the `baseline` method.

    grid: the KL points of the curves (default: 26 from 0 to the largest KL reached);
    budgets: the KL budgets of the tables (nats); key: the compared metric; form: the Gao et
    al. form fitted ("rl" or "bon"); n_boot, level, method, seed: the bootstrap's;
    expected_seeds, expected_methods: the sweep's points, for the missing ones (`coverage`).
    Returns the tables: coverage, curve, curve_diff, budgets, budget_diff, peaks, fits, and
    the grid itself.
    """
    runs = curves(table)
    if baseline not in runs:
        raise ValueError(f"baseline {baseline!r} is not among the methods {sorted(runs)}")
    if grid is None:
        grid = kl_grid(np.array([np.nanmax(c.kl) for m in runs.values() for c in m.values()]))
    boot = {"n_boot": n_boot, "level": level, "method": method, "seed": seed}
    return {
        "key": key, "baseline": baseline, "grid": np.asarray(grid, dtype=float), "budgets_kl": tuple(budgets),
        "n_boot": n_boot, "level": level, "interval": method,
        "coverage": coverage(runs, baseline, expected_seeds, expected_methods),
        "curve": levels(runs, grid, key, baseline, **boot),
        "curve_diff": differences(runs, baseline, grid, key, **boot),
        "budgets": levels(runs, budgets, key, baseline, **boot),
        "budget_diff": differences(runs, baseline, budgets, key, **boot),
        "peaks": peaks(runs, key, baseline, **boot),
        "fits": fits(runs, form, key, baseline, **boot),
    }
