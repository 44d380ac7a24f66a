"""One run's curve at given KL values: interpolation onto a common KL grid (never
extrapolated), the peak, and the value at fixed KL budgets.

The rule for a KL curve that is not monotone (the eval KL is an estimate, and a policy can
move back towards the reference): the value at KL k is the value at the *first time* the
run's KL reaches k, linear between the two eval points around that crossing. This is the
policy a KL budget of k would have kept (stop training when KL first reaches k), and the
reading of Gao et al. 2022 (arXiv 2210.10760, fig. 1-2), whose KL axis is the distance the
optimization has travelled from the initial policy. The first index whose running maximum of
KL reaches k is the end of the first segment that crosses k, for every grid point at once.
"""
from __future__ import annotations

import numpy as np

BUDGETS = (1.0, 2.0, 5.0, 10.0)  # nats: the KL budgets of the tables


def on_kl_grid(kl: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """`values` of one run at the KL points of `grid`, NaN where the run did not reach them.

    kl, values: (t,) the run's eval KL and metric, in step order; grid: (g,). Returns (g,).

    With m_i = max_{j <= i} kl_j (the running max) and i(k) = min{i : m_i >= k}:
      k < kl_0 or k > m_{t-1}: NaN (not reached: below where the run started, or beyond
        the farthest it went; never extrapolated);
      k == kl_0 (i(k) = 0): values_0;
      else: the segment (i-1, i) is the first to cross k (kl_{i-1} <= m_{i-1} < k <= kl_i),
        values_{i-1} + (k - kl_{i-1}) / (kl_i - kl_{i-1}) * (values_i - values_{i-1}).
    Eval points whose KL is NaN are dropped; a NaN value stays NaN (counted as not reached).
    """
    kl, values, grid = (np.asarray(a, dtype=float) for a in (kl, values, grid))
    keep = ~np.isnan(kl)
    kl, values = kl[keep], values[keep]
    out = np.full(grid.shape, np.nan)
    if kl.size == 0:
        return out
    envelope = np.maximum.accumulate(kl)  # (t,) m_i
    i1 = np.minimum(np.searchsorted(envelope, grid, side="left"), kl.size - 1)  # (g,) i(k)
    i0 = np.maximum(i1 - 1, 0)
    k0, k1, y0, y1 = kl[i0], kl[i1], values[i0], values[i1]
    span = k1 - k0
    w = np.divide(grid - k0, span, out=np.ones_like(grid), where=span > 0)  # i(k) = 0: k == kl_0, w = 1
    reached = (grid >= kl[0]) & (grid <= envelope[-1])
    out[reached] = (y0 + w * (y1 - y0))[reached]
    return out


def kl_grid(max_kls: np.ndarray, n: int = 26) -> np.ndarray:
    """(n,) evenly from 0 to the largest KL any run reached (rounded up to a whole nat)."""
    top = float(np.nanmax(max_kls)) if len(max_kls) else 1.0
    return np.linspace(0.0, max(1.0, np.ceil(top)), n)


def peak(kl: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """(max value, KL at it) over the run's eval points (the first eval point on a tie);
    (NaN, NaN) for a run without a finite value."""
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).any():
        return np.nan, np.nan
    i = int(np.nanargmax(values))
    return float(values[i]), float(np.asarray(kl, dtype=float)[i])
