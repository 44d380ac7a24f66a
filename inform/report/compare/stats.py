"""Interval estimates over seeds, after rliable's protocol (Agarwal et al. 2021, "Deep RL at
the Edge of the Statistical Precipice", arXiv 2108.13264): the mean and the interquartile
mean with bootstrap intervals, the paired difference to a baseline and the probability of
improvement.

The bootstrap resamples seeds with replacement: one (B, n) index matrix, drawn from a fixed
seed and shared by every cell with the same n, applied to all statistics at once. The interval
is the percentile interval (rliable's default) or, by default here, Hesterberg's expanded
percentile interval (Hesterberg 2015, "What Teachers Should Know About the Bootstrap", The
American Statistician 69(4), sec. 4.3): the percentile interval at the tail probability
    a' = Phi(sqrt(n / (n - 1)) * t_{a, n-1}),   a = (1 - level) / 2,
which corrects the percentile interval's narrowness at few seeds (for the mean of 10 normal
values, a 95% percentile interval covers about 91%; the expanded one 95%). Quantiles are
order statistics of the B replicates (no interpolation, so an infinite replicate is kept).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from scipy.special import ndtr, stdtrit

N_BOOT = 10_000
LEVEL = 0.95
METHODS = ("expanded", "percentile")


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean, as rliable's `aggregate_iqm` (= scipy.stats.trim_mean(x, 0.25)):
    sort the n values, drop g = floor(n / 4) at each end, average the n - 2g in the middle
    (rliable cuts whole values; no fractional weights). x: (..., n, ...) -> without `axis`."""
    x = np.sort(np.asarray(x, dtype=float), axis=axis)
    n = x.shape[axis]
    g = n // 4
    return np.take(x, np.arange(g, n - g), axis=axis).mean(axis=axis)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """rliable's P(X > Y) over all (i, j) pairs of runs: the Mann-Whitney U statistic over
    n_x n_y, ties counted 1/2. x: (n_x,), y: (n_y,)."""
    d = np.subtract.outer(np.asarray(x, dtype=float), np.asarray(y, dtype=float))  # (n_x, n_y)
    return float(((d > 0) + 0.5 * (d == 0)).mean())


@lru_cache(maxsize=64)
def resample_index(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, n) seed indices drawn with replacement from a fixed seed (read-only, cached)."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    idx.setflags(write=False)
    return idx


def tail(n: int, level: float = LEVEL, method: str = "expanded") -> float:
    """The lower tail probability of the interval: a = (1 - level) / 2 (percentile), or
    Phi(sqrt(n / (n - 1)) t_{a, n-1}) (expanded; n >= 2)."""
    a = (1.0 - level) / 2.0
    if method == "percentile":
        return a
    if method != "expanded":
        raise ValueError(f"interval method {method!r}: one of {METHODS}")
    return float(ndtr(np.sqrt(n / (n - 1)) * stdtrit(n - 1, a)))


def interval(boot: np.ndarray, n: int, level: float = LEVEL, method: str = "expanded") -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): the a and 1 - a quantiles of the replicates `boot` (B, ...) over axis 0
    (order statistics, numpy's `inverted_cdf`); NaN for n < 2 (one seed has no spread)."""
    if n < 2:
        nan = np.full(boot.shape[1:], np.nan)
        return nan, nan.copy()
    a = tail(n, level, method)
    lo, hi = np.quantile(boot, [a, 1.0 - a], axis=0, method="inverted_cdf")
    return lo, hi


def bootstrap(x: np.ndarray, stat: Callable[[np.ndarray], np.ndarray], n_boot: int = N_BOOT, level: float = LEVEL,
              method: str = "expanded", seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, lo, hi) of `stat` over the seeds (rows) of `x`.

    x: (n, ...), one row per seed (a pair of values for paired statistics);
    stat: (B, n, ...) -> (B, m), m statistics of each of B resamples.
    Returns three (m,) arrays: stat(x), and the interval of stat over resamples x[idx], idx (B, n).
    """
    x = np.asarray(x, dtype=float)
    estimate = stat(x[None])[0]
    if len(x) < 2:
        return estimate, *interval(estimate[None], len(x), level, method)
    boot = stat(x[resample_index(len(x), n_boot, seed)])  # (B, m)
    return estimate, *interval(boot, len(x), level, method)


def _floats(**values) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


def _levels(xs: np.ndarray) -> np.ndarray:
    """(B, n) -> (B, 2): mean and IQM of each resample."""
    return np.stack([xs.mean(axis=1), iqm(xs, axis=1)], axis=1)


def summarize(x: np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL, method: str = "expanded", seed: int = 0) -> dict:
    """Mean and IQM of the finite values of x (n,) with their intervals, and n (the finite ones)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n": 0, **{k: np.nan for k in ("mean", "mean_lo", "mean_hi", "iqm", "iqm_lo", "iqm_hi")}}
    est, lo, hi = bootstrap(x, _levels, n_boot, level, method, seed)
    return {"n": int(x.size), **_floats(mean=est[0], mean_lo=lo[0], mean_hi=hi[0], iqm=est[1], iqm_lo=lo[1], iqm_hi=hi[1])}


def _paired(xs: np.ndarray) -> np.ndarray:
    """(B, n, 2) pairs (x_s, y_s) -> (B, 2): mean of d_s = x_s - y_s, and the share of pairs
    with x_s > y_s, ties 1/2 (= mean of (sign(d_s) + 1) / 2)."""
    d = xs[..., 0] - xs[..., 1]
    return np.stack([d.mean(axis=1), ((np.sign(d) + 1.0) / 2.0).mean(axis=1)], axis=1)


def paired_difference(x: np.ndarray, y: np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL,
                      method: str = "expanded", seed: int = 0) -> dict:
    """X against a baseline Y on the same seeds: x, y (n,), x[s] and y[s] from seed s.

    Pairs where either value is NaN (a run that did not reach this KL) are dropped. Returns
    n_pairs; diff = mean_s (x_s - y_s) with diff_lo, diff_hi; poi = P(X > Y) over the seed
    pairs (rliable's probability of improvement, its U statistic taken over the matched pairs
    instead of all n_x n_y: the paired design's version), with poi_lo, poi_hi. The bootstrap
    resamples seeds, keeping each pair together.
    """
    pairs = np.stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)], axis=1)  # (n, 2)
    pairs = pairs[np.isfinite(pairs).all(axis=1)]
    if len(pairs) == 0:
        return {"n_pairs": 0, **{k: np.nan for k in ("diff", "diff_lo", "diff_hi", "poi", "poi_lo", "poi_hi")}}
    est, lo, hi = bootstrap(pairs, _paired, n_boot, level, method, seed)
    return {"n_pairs": len(pairs), **_floats(diff=est[0], diff_lo=lo[0], diff_hi=hi[0], poi=est[1], poi_lo=lo[1], poi_hi=hi[1])}


def unpaired_difference(x: np.ndarray, y: np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL,
                        method: str = "expanded", seed: int = 0) -> dict:
    """mean(x) - mean(y) with an interval that resamples x and y independently (the
    comparison that ignores the seed pairing; rliable's stratified bootstrap). The expanded
    interval takes n = min(n_x, n_y)."""
    x, y = (np.asarray(v, dtype=float) for v in (x, y))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n = min(len(x), len(y))
    if n == 0:
        return {"n_x": len(x), "n_y": len(y), "diff": np.nan, "diff_lo": np.nan, "diff_hi": np.nan}
    boot = x[resample_index(len(x), n_boot, seed)].mean(axis=1) - y[resample_index(len(y), n_boot, seed + 1)].mean(axis=1)
    lo, hi = interval(boot[:, None], n, level, method)
    return {"n_x": len(x), "n_y": len(y), **_floats(diff=x.mean() - y.mean(), diff_lo=lo[0], diff_hi=hi[0])}
