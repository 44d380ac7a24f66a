"""The functional forms of Gao et al. 2022, "Scaling Laws for Reward Model Overoptimization"
(arXiv 2210.10760, sec. 3: R_bon and R_RL), fitted to one run's gold curve.

With d = sqrt(KL(pi || pi_init)) and R the gold reward measured from the initial (SFT)
policy's value (R(0) = 0):
    RL:           R(d) = d (alpha - beta log d)
    best-of-n:    R(d) = d (alpha - beta d)
Both are linear in (alpha, beta) for given d: R = alpha * d - beta * g(d), with g(d) = d log d
(RL; g(0) = 0, its limit) or d^2 (best-of-n). Ordinary least squares on R in this basis is
therefore exact on an exact curve, in closed form. It is fitted on R rather than on R / d,
because the eval noise is on R: dividing by d would weight the points near KL 0 by 1 / d^2.

The peak (dR/dd = 0; a maximum when beta > 0):
    RL:  alpha - beta log d - beta = 0  =>  d* = exp(alpha / beta - 1),  R(d*) = beta d*
    BoN: alpha - 2 beta d = 0           =>  d* = alpha / (2 beta),       R(d*) = alpha^2 / (4 beta)
and KL* = d*^2. beta <= 0: no peak (R grows without bound), KL* = inf. BoN with alpha < 0:
the peak is at d = 0.
"""
from __future__ import annotations

import numpy as np

FORMS = ("rl", "bon")


def _basis(d: np.ndarray, form: str) -> np.ndarray:
    """(t,) -> (t, 2): the columns multiplying alpha and -beta."""
    if form == "rl":
        g = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    elif form == "bon":
        g = d * d
    else:
        raise ValueError(f"Gao et al. form {form!r}: one of {FORMS}")
    return np.stack([d, -g], axis=1)


def gao_curve(kl: np.ndarray, alpha: float, beta: float, form: str = "rl") -> np.ndarray:
    """R at the KL values `kl` (t,) for the given (alpha, beta): (t,)."""
    d = np.sqrt(np.clip(np.asarray(kl, dtype=float), 0.0, None))
    return _basis(d, form) @ np.array([alpha, beta])


def fit_gao(kl: np.ndarray, reward: np.ndarray, form: str = "rl") -> tuple[float, float]:
    """Least-squares (alpha, beta) of one run's curve: kl (t,) (negative estimates clipped to
    0), reward (t,) = gold minus the SFT policy's gold. (NaN, NaN) with fewer than two
    distinct KL > 0 (the basis has rank < 2)."""
    kl, reward = np.asarray(kl, dtype=float), np.asarray(reward, dtype=float)
    keep = np.isfinite(kl) & np.isfinite(reward)
    X = _basis(np.sqrt(np.clip(kl[keep], 0.0, None)), form)  # (t, 2)
    if np.linalg.matrix_rank(X) < 2:
        return np.nan, np.nan
    (alpha, beta), *_ = np.linalg.lstsq(X, reward[keep], rcond=None)
    return float(alpha), float(beta)


def gao_peak(alpha: np.ndarray, beta: np.ndarray, form: str = "rl") -> tuple[np.ndarray, np.ndarray]:
    """(KL*, R(d*)) of the fitted form, elementwise over arrays of (alpha, beta); KL* = inf
    and R* = inf where beta <= 0 (no peak)."""
    alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
    peaked = beta > 0
    b = np.where(peaked, beta, 1.0)
    if form == "rl":
        with np.errstate(over="ignore"):
            d = np.exp(alpha / b - 1.0)
        r = b * d
    elif form == "bon":
        d = np.maximum(alpha / (2.0 * b), 0.0)
        r = np.where(alpha > 0, alpha * alpha / (4.0 * b), 0.0)
    else:
        raise ValueError(f"Gao et al. form {form!r}: one of {FORMS}")
    return np.where(peaked, d * d, np.inf), np.where(peaked, r, np.inf)


def fit_run(kl: np.ndarray, gold: np.ndarray, form: str = "rl") -> tuple[float, float]:
    """`fit_gao` on a run's eval curve, gold measured from its first eval (step 0: the SFT
    policy, KL 0)."""
    gold = np.asarray(gold, dtype=float)
    return fit_gao(kl, gold - gold[0], form)
