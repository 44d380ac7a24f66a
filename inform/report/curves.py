"""Figures a person looks at: the over-optimization curve of a PPO run."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REWARDS = [  # key, label, style
    ("reward/proxy_eval", "proxy RM (what PPO optimizes)", dict(color="tab:blue", marker="o")),
    ("reward/gold", "gold RM", dict(color="tab:red", marker="s")),
]
TRUE = ("reward/true", "true quality q (right axis)", dict(color="tab:green", marker="^", linestyle="--"))


def save_figure(fig, path: str | Path) -> Path:
    """Write a PNG atomically (a temporary file renamed), close the figure."""
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def _panel(ax, history: list[dict], x_key: str) -> None:
    x = [row[x_key] for row in history]
    for key, label, style in REWARDS:
        if all(key in row for row in history):
            ax.plot(x, [row[key] for row in history], label=label, markersize=3.5, linewidth=1.3, **style)
    if all(TRUE[0] in row for row in history):
        right = ax.twinx()
        key, label, style = TRUE
        right.plot(x, [row[key] for row in history], label=label, markersize=3.5, linewidth=1.1, **style)
        right.set_ylabel("true quality q", color="tab:green")
        right.tick_params(axis="y", colors="tab:green")
        ax.plot([], [], label=label, **style)  # one legend for both axes
    if "reward/gold" in history[0]:
        peak = max(history, key=lambda r: r["reward/gold"])
        ax.axvline(peak[x_key], color="tab:red", alpha=0.35, linestyle=":", label=f"gold peak (step {peak['step']})")
    ax.grid(alpha=0.3)


def _csi_panel(ax, history: list[dict]) -> None:
    rows = [r for r in history if "csi/value" in r]
    ax.plot([r["eval/kl"] for r in rows], [r["csi/value"] for r in rows], color="tab:purple", marker="D", markersize=3.5,
            linewidth=1.3, label="CSI (proxy RM latents)")
    ax.set_ylabel("CSI", color="tab:purple")
    if all("reward/gold" in r for r in history):
        right = ax.twinx()
        right.plot([r["eval/kl"] for r in history], [r["reward/gold"] for r in history], color="tab:red", marker="s",
                   markersize=3, linewidth=1.0, alpha=0.7)
        right.set_ylabel("gold RM", color="tab:red")
        ax.plot([], [], color="tab:red", marker="s", label="gold RM (right axis)")
    ax.set_xlabel("KL(pi || pi_ref) per response (nats)")
    ax.set_title("CSI against KL")
    ax.grid(alpha=0.3)


def plot_overoptimization(history: list[dict], path: str | Path, title: str = "", stop_step: int | None = None) -> Path:
    """Gold, proxy and true reward of the eval samples against KL(pi || pi_ref) and against
    step, and CSI against KL when the run logged it.

    `history`: one row per eval step with `step`, `eval/kl` and the reward keys (missing
    keys are skipped). Gold and proxy are standardized on the SFT samples (SD units); the
    exact quality has its own axis. `stop_step`: where CSI early stopping fired (marked).
    """
    has_csi = any("csi/value" in r for r in history)
    fig, axes = plt.subplots(1, 3 if has_csi else 2, figsize=(16 if has_csi else 11, 4.2), dpi=110)
    ax_kl, ax_step = axes[0], axes[-1]
    _panel(ax_kl, history, "eval/kl")
    ax_kl.set_xlabel("KL(pi || pi_ref) per response (nats)")
    ax_kl.set_ylabel("reward (SD units of the SFT samples)")
    ax_kl.set_title("against KL")
    _panel(ax_step, history, "step")
    ax_step.set_xlabel("RL step (PPO or RLOO iteration)")
    ax_step.set_title("against RL step")
    if has_csi:
        _csi_panel(axes[1], history)
    stop = next((r for r in history if r["step"] == stop_step), None) if stop_step is not None else None
    if stop is not None:
        for ax, x in ((ax_kl, stop["eval/kl"]), (ax_step, stop["step"]), *(((axes[1], stop["eval/kl"]),) if has_csi else ())):
            ax.axvline(x, color="black", alpha=0.6, linestyle="--", label=f"CSI early stop (step {stop['step']})")
    for ax in axes[:-1]:
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(title or "reward over-optimization")
    fig.tight_layout()
    return save_figure(fig, path)
