"""Mahalanobis distance to the SFT latents, and MOP (the InfoRM authors' later work, IBL/MOP).

SFT statistics (once per proxy RM): latents z of the SFT policy's samples (IB `mu`, or the
last hidden state of a scalar RM), optionally reduced by PCA to `pca_dim`;

    m = mean(z),    S = cov(z) + eps * I        (or Ledoit-Wolf shrinkage of cov(z))

A sample's distance:   D(z) = sqrt((z - m)^T S^-1 (z - m))
Under the SFT Gaussian, D^2 ~ chi^2 with dim z degrees of freedom, so p(z) = 1 - F_chi2(D^2).
MOP (Mahalanobis outlier probability) = the share of eval samples with p < alpha (0.01):
about alpha for samples like the SFT ones, near 1 for samples far outside them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA


@dataclass
class GaussianStats:
    mean: np.ndarray  # (d,)
    precision: np.ndarray  # (d, d) = S^-1
    pca: PCA | None = None  # fitted on the SFT latents when pca_dim is set

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def project(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return self.pca.transform(z) if self.pca is not None else z


def fit_gaussian(latents: np.ndarray, eps: float = 1e-6, shrinkage: str = "none", pca_dim: int | None = None) -> GaussianStats:
    """m and S^-1 of the SFT latents (n, D); `shrinkage`: none (cov + eps I) or ledoit_wolf.

    A singular covariance (fewer samples than dims, or collapsed IB dimensions) is made
    invertible by `eps * I`, scaled to the latents' own variance so that it is not lost in
    float rounding; eps = 0 with a singular covariance is an error that says so.
    """
    z = np.asarray(latents, dtype=np.float64)
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"detectors.mahalanobis: need at least 2 SFT latents of shape (n, d), got {z.shape}")
    pca = None
    if pca_dim is not None and pca_dim < z.shape[1]:
        pca = PCA(n_components=pca_dim, random_state=0).fit(z)
        z = pca.transform(z)
    mean = z.mean(axis=0)
    if shrinkage == "ledoit_wolf":
        cov = LedoitWolf().fit(z).covariance_
    elif shrinkage == "none":
        cov = np.cov(z, rowvar=False).reshape(z.shape[1], z.shape[1])
        cov = cov + eps * max(float(np.trace(cov)) / cov.shape[0], 1e-12) * np.eye(cov.shape[0])
    else:
        raise ValueError(f"detectors.mahalanobis.shrinkage: {shrinkage!r} is not none or ledoit_wolf")
    try:
        precision = np.linalg.inv(cov)
        if not np.isfinite(precision).all() or np.linalg.cond(cov) > 1e12:
            raise np.linalg.LinAlgError("ill-conditioned")
    except np.linalg.LinAlgError as err:
        raise ValueError(
            f"detectors.mahalanobis: the SFT latent covariance ({cov.shape[0]} dims, {len(z)} samples) is singular ({err}); "
            "set detectors.mahalanobis.eps > 0, shrinkage=ledoit_wolf, or a pca_dim below the number of samples"
        ) from None
    return GaussianStats(mean, precision, pca)


def mahalanobis(z: np.ndarray, stats: GaussianStats) -> np.ndarray:
    """(n,) D(z) = sqrt((z - m)^T S^-1 (z - m)) of latents (n, D)."""
    d = stats.project(z) - stats.mean  # (n, d)
    return np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", d, stats.precision, d), 0.0))


def outlier_pvalues(distances: np.ndarray, dim: int) -> np.ndarray:
    """(n,) p = 1 - F_chi2(D^2; dof = dim)."""
    return chi2.sf(np.asarray(distances, dtype=np.float64) ** 2, df=dim)


def mop(distances: np.ndarray, dim: int, alpha: float = 0.01) -> float:
    """Share of samples whose chi-square p-value is below alpha."""
    return float((outlier_pvalues(distances, dim) < alpha).mean())
