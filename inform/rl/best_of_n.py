"""Best-of-n sampling, evaluated with the unbiased estimator over N >= n samples per prompt.

Best-of-n (BoN): draw n responses from the base policy, keep the one the proxy RM scores
highest. Its expected gold (and proxy) reward is estimated from N >= n samples per prompt
without drawing subsets: sort the N samples by proxy score, y_(1) <= ... <= y_(N); the i-th
is the proxy-best of a uniformly random n-subset (without replacement) with probability

    w_i = C(i - 1, n - 1) / C(N, n)      (the other n - 1 members all rank below it)

so  E[R_gold(BoN_n)] = sum_i w_i R_gold(y_(i)),  the average over all C(N, n) subsets
(Nakano et al. 2021, WebGPT, appendix; Gao et al. 2022, "Scaling laws for reward model
overoptimization", appendix on the unbiased best-of-n estimator). Its KL to the base policy is

    KL(BoN_n || pi) = log n - (n - 1) / n      (Stiennon et al. 2020; Gao et al. 2022)

exact when the n samples are distinct with probability 1, an upper bound otherwise
(Beirami et al. 2024, "Theoretical guarantees on the best-of-n alignment policy").
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def bon_weights(N: int, n: int) -> torch.Tensor:
    """(N,) float64: w_i = C(i-1, n-1) / C(N, n) for i = 1..N, the probability that the
    i-th smallest of N samples is the largest of a uniformly random n-subset.

    Computed in log space, log C(a, b) = lgamma(a+1) - lgamma(b+1) - lgamma(a-b+1), so N in
    the thousands does not overflow; w_i = 0 for i < n. They sum to 1 (the hockey-stick
    identity sum_{i=n}^{N} C(i-1, n-1) = C(N, n)).
    """
    if not 1 <= n <= N:
        raise ValueError(f"best-of-n needs 1 <= n <= N (got n={n}, N={N})")
    i = torch.arange(1, N + 1, dtype=torch.float64)  # (N,)
    a = (i - 1).clamp(min=n - 1)  # rows i < n get weight 0 below; clamp keeps lgamma finite
    log_num = torch.lgamma(a + 1) - math.lgamma(n) - torch.lgamma(a - n + 2)  # log C(i-1, n-1)
    log_den = math.lgamma(N + 1) - math.lgamma(n + 1) - math.lgamma(N - n + 1)  # log C(N, n)
    w = torch.exp(log_num - log_den)
    return torch.where(i >= n, w, torch.zeros_like(w))


def best_of_n(proxy: torch.Tensor, gold: torch.Tensor, n: int) -> tuple[float, float]:
    """(proxy_bon, gold_bon): the unbiased estimates of the best-of-n proxy and gold reward.

    Args:
        proxy: (P, N) proxy RM score of each of N samples of P prompts (what picks the best)
        gold: (P, N) gold RM score of the same samples
        n: 1 <= n <= N
    Returns:
        mean over prompts of sum_i w_i r_(i), r sorted by proxy ascending, w = bon_weights(N, n).
    Ties in proxy: a stable sort, so among tied samples the later one (higher column index)
    ranks higher and wins; this is one fixed tie-break, not the average over random ones.
    """
    if proxy.shape != gold.shape or proxy.dim() != 2:
        raise ValueError(f"proxy and gold must both be (P, N) (got {tuple(proxy.shape)} and {tuple(gold.shape)})")
    w = bon_weights(proxy.shape[1], n)  # (N,)
    order = torch.argsort(proxy.double(), dim=-1, stable=True)  # (P, N) ascending proxy
    proxy_sorted = torch.gather(proxy.double(), 1, order)  # (P, N)
    gold_sorted = torch.gather(gold.double(), 1, order)  # (P, N)
    return (proxy_sorted @ w).mean().item(), (gold_sorted @ w).mean().item()


def bon_kl(n: int) -> float:
    """KL(BoN_n || pi) = log n - (n - 1) / n nats (0 at n = 1)."""
    if n < 1:
        raise ValueError(f"best-of-n needs n >= 1 (got {n})")
    return math.log(n) - (n - 1) / n


def bon_curve(proxy: torch.Tensor, gold: torch.Tensor, ns: Iterable[int]) -> list[dict]:
    """One row per n (ascending): {"n", "bon/kl", "bon/proxy", "bon/gold"}; scores (P, N)."""
    rows = []
    for n in sorted({int(n) for n in ns}):
        p, g = best_of_n(proxy, gold, n)
        rows.append({"n": n, "bon/kl": bon_kl(n), "bon/proxy": p, "bon/gold": g})
    return rows
