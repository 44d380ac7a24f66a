"""The comparison written out: results.md (tables with intervals and n per cell), the tidy
table and the curve tables as CSV, and a figure of each method's mean curve with its interval
band against KL, beside the paired difference to the baseline. No W&B logging here.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from inform.report.compare.analysis import compare
from inform.report.compare.stats import summarize
from inform.report.compare.table import write_csv
from inform.report.curves import plt, save_figure

KL_LABEL = "KL(pi || pi_ref) per response (nats)"


def ci(est: float, lo: float, hi: float, digits: int = 2) -> str:
    """'est [lo, hi]'; 'est' alone when there is no interval (one seed); '-' for no value."""
    if est is None or math.isnan(est):
        return "-"
    if lo is None or math.isnan(lo) or math.isnan(hi):
        return f"{est:.{digits}f}"
    return f"{est:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def summary_ci(s: dict, digits: int = 2) -> str:
    """A `stats.summarize` result as 'n/a' (no finite value), one value, or 'mean [lo, hi]'."""
    return "n/a" if s["n"] == 0 else ci(s["mean"], s["mean_lo"], s["mean_hi"], digits)


def mean_ci(values, digits: int = 2, **boot) -> str:
    """`summary_ci` of the values over seeds (None and NaN left out); boot: `summarize`'s options."""
    return summary_ci(summarize(np.array(values, dtype=float), **boot), digits)


MIN_PAIRS = 5  # the fewest seed pairs a verdict rests on


def reading(row: dict) -> str:
    """The verdict a paired difference supports: its interval above 0, below 0, or containing 0
    ('no difference detected with n seeds', never a win or a loss). Below MIN_PAIRS pairs there
    is no verdict: a bootstrap interval cannot leave the range of the n values it resamples, so
    with n = 2 its "95%" interval is [min, max], which holds the true mean only half the time
    (1 - 2 / 2^n for a symmetric noise; 0.94 at n = 5, 0.97 at n = 6)."""
    n = row["n_pairs"]
    if n < MIN_PAIRS:
        return f"no verdict: {n} seed pairs (a verdict needs {MIN_PAIRS})"
    if row["diff_lo"] > 0:
        return "above baseline"
    if row["diff_hi"] < 0:
        return "below baseline"
    return f"no difference detected with {n} seeds"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows), ""]


def markdown(res: dict[str, Any], title: str = "Comparison at matched KL") -> str:
    """results.md from the tables of `analysis.compare`."""
    key, base, level = res["key"], res["baseline"], f"{100 * res['level']:g}%"
    kind = "expanded percentile (Hesterberg 2015)" if res["interval"] == "expanded" else "percentile"
    out = [f"# {title}", "",
           (f"Metric `{key}`, compared at matched KL per response (nats) against the baseline **{base}**. Intervals: "
            f"[{level} CI] = {kind} bootstrap over seeds, {res['n_boot']:,} resamples (`inform.report.compare`); IQM: "
            "interquartile mean (rliable); a run counts at KL k only if it reached k (first crossing, no extrapolation): "
            "`reached` says how many of n did."), "",
           "## Runs", ""]
    out += _table(["method", "runs", "seeds", "missing seeds"],
                  [[r["method"], str(r["runs"]), ", ".join(map(str, r["seeds"])),
                    ", ".join(map(str, r["missing_seeds"])) or "none"] for r in res["coverage"]])
    out += [f"## {key} at fixed KL budgets", ""]
    out += _table(["method", "KL", "reached", f"mean [{level} CI]", f"IQM [{level} CI]"],
                  [[r["method"], f"{r['kl']:g}", f"{r['n_reached']}/{r['n_runs']}", ci(r["mean"], r["mean_lo"], r["mean_hi"]),
                    ci(r["iqm"], r["iqm_lo"], r["iqm_hi"])] for r in res["budgets"]])
    out += [f"## Paired difference to {base} at fixed KL budgets", "",
            ("Pairs by seed (same seed: same SFT policy, gold RM and labels), over the seeds where both runs reached the KL. "
             f"P(X > {base}): the share of seed pairs where the method is higher, ties 1/2. A reading needs {MIN_PAIRS} or "
             "more pairs (`report.reading`)."), ""]
    out += _table(["method", "KL", "pairs", f"difference to {base} [{level} CI]", f"P(X > {base}) [{level} CI]", "reading"],
                  [[r["method"], f"{r['kl']:g}", str(r["n_pairs"]), ci(r["diff"], r["diff_lo"], r["diff_hi"]),
                    ci(r["poi"], r["poi_lo"], r["poi_hi"]), reading(r)] for r in res["budget_diff"]])
    out += [f"## Peak {key} and the KL at the peak", "", "Over each run's eval points.", ""]
    out += _table(["method", "runs", f"peak: mean [{level} CI]", f"peak: IQM [{level} CI]", f"KL at peak: mean [{level} CI]",
                   f"peak - {base} [{level} CI]", f"P(peak > {base}) [{level} CI]"],
                  [[r["method"], str(r["n_runs"]), ci(r["peak_mean"], r["peak_mean_lo"], r["peak_mean_hi"]),
                    ci(r["peak_iqm"], r["peak_iqm_lo"], r["peak_iqm_hi"]),
                    ci(r["kl_at_peak_mean"], r["kl_at_peak_mean_lo"], r["kl_at_peak_mean_hi"], 1),
                    ci(r["diff"], r["diff_lo"], r["diff_hi"]) if "diff" in r else "baseline",
                    ci(r["poi"], r["poi_lo"], r["poi_hi"]) if "poi" in r else ""] for r in res["peaks"]])
    form = res["fits"][0]["form"] if res["fits"] else "rl"
    shape = "d (alpha - beta log d)" if form == "rl" else "d (alpha - beta d)"
    out += [f"## Fits of Gao et al. 2022: R(d) = {shape}", "",
            (f"d = sqrt(KL); R = {key} minus the run's step-0 (SFT) value; least squares per run; alpha and beta averaged "
             "over seeds; KL* = the peak of the mean fitted curve (inf: no peak, beta <= 0)."), ""]
    out += _table(["method", "fitted", f"alpha [{level} CI]", f"beta [{level} CI]", f"peak KL* [{level} CI]"],
                  [[r["method"], f"{r['n_fitted']}/{r['n_runs']}", ci(r["alpha"], r["alpha_lo"], r["alpha_hi"], 3),
                    ci(r["beta"], r["beta_lo"], r["beta_hi"], 3), ci(r["kl_star"], r["kl_star_lo"], r["kl_star_hi"], 1)]
                   for r in res["fits"]])
    return "\n".join(out)


def _draw(ax, rows: list[dict], x: str, y: str, lo: str, hi: str, color: str, label: str, n: str, total: int) -> None:
    """The mean curve and band where at least half of `total` (and at least 2) have a value."""
    rows = [r for r in rows if r[n] >= max(2, total / 2)]
    if not rows:
        return
    k = np.array([r[x] for r in rows])
    ax.plot(k, [r[y] for r in rows], color=color, linewidth=1.6, label=label)
    ax.fill_between(k, [r[lo] for r in rows], [r[hi] for r in rows], color=color, alpha=0.2, linewidth=0)


def plot(res: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Left: each method's mean curve and its interval band against KL; right: the paired
    difference to the baseline. A curve is drawn where at least half of its runs (and at
    least 2) reached that KL: beyond, the mean would rest on the survivors only."""
    methods = [r["method"] for r in res["coverage"]]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {m: cycle[i % len(cycle)] for i, m in enumerate(methods)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4), dpi=110)
    for c in res["coverage"]:
        m = c["method"]
        _draw(left, [r for r in res["curve"] if r["method"] == m], "kl", "mean", "mean_lo", "mean_hi", colors[m], m,
              "n_reached", c["runs"])
        _draw(right, [r for r in res["curve_diff"] if r["method"] == m], "kl", "diff", "diff_lo", "diff_hi", colors[m], m,
              "n_pairs", c["runs"])
    right.axhline(0.0, color="grey", linewidth=0.8)
    left.set_ylabel(f"{res['key']} (mean, {100 * res['level']:g}% CI over seeds)")
    right.set_ylabel(f"{res['key']} - {res['baseline']} (paired by seed)")
    for ax in (left, right):
        ax.set_xlabel(KL_LABEL)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a method with fewer than 2 runs draws no curve
            ax.legend(fontsize=8)
    fig.suptitle(title or f"{res['key']} at matched KL against {res['baseline']}")
    fig.tight_layout()
    return save_figure(fig, path)


def write_report(table: list[dict[str, Any]], out: str | Path, baseline: str, title: str = "", **options) -> dict[str, Any]:
    """Compare (`analysis.compare(table, baseline, **options)`) and write into `out`:
    results.md, tidy.csv (the table), curves.csv (each method's curve on the KL grid),
    differences.csv (the paired differences on the grid) and comparison.png. Returns the paths
    and, under "results", the tables."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = compare(table, baseline, **options)
    paths: dict[str, Any] = {
        "results_md": out / "results.md",
        "tidy_csv": write_csv(table, out / "tidy.csv"),
        "curves_csv": write_csv(res["curve"], out / "curves.csv"),
        "differences_csv": write_csv(res["curve_diff"], out / "differences.csv"),
        "figure": plot(res, out / "comparison.png", title),
    }
    paths["results_md"].write_text(markdown(res, title or "Comparison at matched KL") + "\n")
    return {**paths, "results": res}
