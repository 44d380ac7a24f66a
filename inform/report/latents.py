"""The picture behind CSI: SFT vs RLHF latents in 2-D, with the CSI clusters marked."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from inform.detect.csi import CSIResult, auto_eps
from inform.report.curves import plt, save_figure


def project(points: np.ndarray, method: str = "tsne", seed: int = 0, max_tsne: int = 5000) -> np.ndarray:
    """(n, 2): t-SNE, or PCA for large sets (t-SNE is O(n log n) but slow beyond a few thousand)."""
    if method == "pca" or len(points) > max_tsne:
        return PCA(n_components=2, random_state=seed).fit_transform(points)
    perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3)))
    return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(points)


def plot_latents(
    sft: np.ndarray, rlhf: np.ndarray, result: CSIResult, path: str | Path, title: str = "", method: str = "tsne",
    seed: int = 0, threshold: float | None = None,
) -> Path:
    """SFT latents (blue), RLHF latents by CSI cluster; clusters whose centroid is farther than
    `threshold` (default: the SFT latents' median 5-NN distance) from every SFT latent are the
    outliers (red, labelled |C_i| and d_i); noise in grey."""
    xy = project(np.concatenate([sft, rlhf]).astype(np.float64), method, seed)
    s_xy, r_xy = xy[: len(sft)], xy[len(sft):]
    fig, ax = plt.subplots(figsize=(6.2, 5.2), dpi=110)
    ax.scatter(s_xy[:, 0], s_xy[:, 1], s=9, c="tab:blue", alpha=0.45, label="SFT samples")
    noise = result.labels == -1
    ax.scatter(r_xy[noise, 0], r_xy[noise, 1], s=12, c="0.55", marker="x", alpha=0.6, label="RLHF: noise")
    ids = [c for c in np.unique(result.labels) if c != -1]
    if threshold is None:
        threshold = auto_eps(np.asarray(sft, dtype=np.float64))
    outlier_drawn = inlier_drawn = False
    for c, size, d in zip(ids, result.sizes, result.distances):
        pts = r_xy[result.labels == c]
        outlier = d > threshold
        label = None
        if outlier and not outlier_drawn:
            label, outlier_drawn = "RLHF: outlier cluster (far from all SFT)", True
        elif not outlier and not inlier_drawn:
            label, inlier_drawn = "RLHF: cluster near SFT", True
        ax.scatter(pts[:, 0], pts[:, 1], s=14, c="tab:red" if outlier else "tab:orange", alpha=0.8, label=label)
        if outlier:
            cx, cy = pts.mean(axis=0)
            ax.annotate(f"|C|={size}, d={d:.2g}", (cx, cy), fontsize=7, color="darkred", xytext=(4, 4), textcoords="offset points")
    ax.set_title(title or f"latents ({'PCA' if method == 'pca' or len(xy) > 5000 else 't-SNE'}), CSI = {result.value:.3g}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)
