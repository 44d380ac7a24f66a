"""The Cluster Separation Index (InfoRM, seed 001, sec. 3.3 and appendix J.2, Algorithm 3).

Cluster the RLHF policy's latents (noise points excluded); for each cluster C_i with centroid
c_i, d_i is the distance from c_i to the nearest SFT latent s_j:

    d_i = min_j || c_i - s_j ||_2,        CSI = sum_i |C_i| * d_i

Latents: the IB posterior mean `mu` at the last token for InfoRM, the last hidden state for
scalar reward models (so every objective gets a CSI).

Clustering defaults, and why (the paper calls scikit-learn's `DBSCAN()` as is: eps 0.5,
min_samples 5, in raw latent units):
- DBSCAN, min_samples 5, as the paper.
- eps is not a fixed 0.5: latent scales differ by orders of magnitude between RMs (an IB
  `mu` near its N(0, I) prior, a 64-wide hidden state, a 4096-wide one), so a fixed eps
  finds only noise for one RM (the tiny BT RM's hidden states: CSI 0 at every step) and one
  cluster of everything for another. `eps=None` (the default) uses DBSCAN's own k-distance
  heuristic (Ester et al. 1996) on the set being clustered: eps = eps_scale * the median
  distance from an RLHF latent to its min_samples-th nearest RLHF neighbour, so a typical
  sample is a core point whatever the scale, and ~15-25% are left as noise. An eps taken
  from the SFT latents instead fails when the policy drifts: the drifted samples spread
  over a region much wider than the compact SFT cloud, all become noise, and CSI *falls*
  to 0 exactly when over-optimization starts (measured on the tiny pipeline's IB run; see
  docs/detectors.md). The distances d_i stay in raw latent units.
- HDBSCAN (`method="hdbscan"`, the hdbscan package) needs no eps: min_cluster_size and
  min_samples (default 5 each). Reduce dimension first for very large sets (DESIGN.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.neighbors import NearestNeighbors


@dataclass
class CSIResult:
    value: float  # sum_i |C_i| d_i
    n_clusters: int
    noise_frac: float  # share of RLHF latents DBSCAN/HDBSCAN left unclustered
    labels: np.ndarray  # (n,) cluster of each RLHF latent, -1 = noise
    sizes: list[int] = field(default_factory=list)  # |C_i|
    distances: list[float] = field(default_factory=list)  # d_i
    eps: float | None = None

    def metrics(self, prefix: str = "csi") -> dict[str, float]:
        return {f"{prefix}/value": self.value, f"{prefix}/n_clusters": float(self.n_clusters), f"{prefix}/noise_frac": self.noise_frac}


def auto_eps(points: np.ndarray, min_samples: int = 5, scale: float = 1.0) -> float:
    """scale * the median over `points` of the distance to their min_samples-th neighbour."""
    k = min(min_samples, len(points) - 1)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)  # column 0 is the point itself
    return float(scale * np.median(dist[:, k]))


def cluster(latents: np.ndarray, method: str = "dbscan", eps: float = 0.5, min_samples: int = 5, min_cluster_size: int = 5) -> np.ndarray:
    """(n,) cluster labels of the latents, -1 for noise."""
    if method == "dbscan":
        return DBSCAN(eps=eps, min_samples=min_samples).fit_predict(latents)
    if method == "hdbscan":
        import hdbscan

        return hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples).fit_predict(latents)
    raise ValueError(f"csi.method: {method!r} is neither dbscan nor hdbscan")


def cluster_separation_index(
    rlhf: np.ndarray, sft: np.ndarray, method: str = "dbscan", eps: float | None = None, eps_scale: float = 1.0,
    min_samples: int = 5, min_cluster_size: int = 5, sft_index: NearestNeighbors | None = None,
) -> CSIResult:
    """CSI of RLHF latents (n, D) against SFT latents (m, D); see the module docstring.

    `eps=None`: the k-distance heuristic on `rlhf` (auto_eps). `sft_index`: a
    NearestNeighbors already fit on `sft` (reused across eval steps).
    """
    rlhf, sft = np.asarray(rlhf, dtype=np.float64), np.asarray(sft, dtype=np.float64)
    if method == "dbscan" and eps is None:
        eps = auto_eps(rlhf, min_samples, eps_scale)
    labels = cluster(rlhf, method, eps if eps is not None else 0.5, min_samples, min_cluster_size)
    ids = [c for c in np.unique(labels) if c != -1]
    if not ids:
        return CSIResult(0.0, 0, 1.0 if len(rlhf) else 0.0, labels, eps=eps)
    centroids = np.stack([rlhf[labels == c].mean(axis=0) for c in ids])  # (k, D)
    index = sft_index or NearestNeighbors(n_neighbors=1).fit(sft)
    d, _ = index.kneighbors(centroids, n_neighbors=1)  # (k, 1) distance to the nearest SFT latent
    sizes = [int((labels == c).sum()) for c in ids]
    distances = d[:, 0].tolist()
    value = float(sum(s * di for s, di in zip(sizes, distances)))
    return CSIResult(value, len(ids), float((labels == -1).mean()), labels, sizes, distances, eps)
