"""Read the detector and mitigation runs back (W&B offline files) and answer two questions:

1. Which detector warns earliest? For each PPO run of the `detectors` sweep (BT and IB
   proxies, every detector on) and each detector metric: the step where the change-rate rule
   (e_t > 10, InfoRM appendix G) would fire against the step of the gold peak, the gold lost
   by then, and the Spearman rank correlation between the detector and the drop of gold
   from its running peak.
2. Which mitigation keeps gold highest at equal KL? Plain PPO vs IBL vs EPPO (the
   `mitigations` sweep, IB proxy), compared by `inform.report.compare` against plain PPO:
   gold on a common KL grid, paired by seed, with bootstrap intervals (mitigations/).

Writes detectors.png, results.md and mitigations/ (results.md, comparison.png, CSVs) next to
this file (or --out), and logs the figures and tables to a W&B offline run (job type `analysis`).

    python experiments/detectors/analyze.py experiments/detectors/runs [--out experiments/detectors]
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from inform.report.compare import tidy, write_report
from inform.report.compare.report import ci, mean_ci as cell
from inform.report.curves import plt, save_figure
from inform.report.runs import eval_rows, fire_step, log_analysis
from inform.tracking.wandb_offline import find_runs

PLAIN = "plain"  # PPO without a mitigation: the baseline of the mitigations
DETECTORS = {"csi/value": "CSI", "detect/mahalanobis_mean": "Mahalanobis", "detect/mop": "MOP", "detect/energy_gap": "energy gap"}
KL_POINTS = (1.0, 2.0, 5.0)


def mitigation_of(config: dict) -> str:
    """plain, IBL <coef> or EPPO <coef>; the IB proxy's beta too where it is not the paper's 0.1."""
    method = PLAIN
    if config.get("ibl_coef"):
        method = f"IBL {config['ibl_coef']:g}"
    elif config.get("energy_coef"):
        method = f"EPPO {config['energy_coef']:g}"
    beta = config.get("beta")
    return method + ("" if config["objective"]["name"] != "ib" or beta in (None, 0.1) else f" (beta {beta:g})")


def describe(run) -> dict:
    c = run.config
    return {"objective": c["objective"]["name"], "seed": c["seed"], "method": mitigation_of(c), "rows": eval_rows(run),
            "name": c.get("name")}


def detector_table(runs: list[dict]) -> tuple[list[dict], dict]:
    """Per (objective, detector): how each seed's run looked to it."""
    per = defaultdict(list)
    for r in runs:
        rows = r["rows"]
        steps, gold = [x["step"] for x in rows], np.array([x["reward/gold"] for x in rows])
        peak = int(np.argmax(gold))
        drop = np.maximum.accumulate(gold) - gold  # gold lost from its best so far
        for key in DETECTORS:
            if not all(key in x for x in rows):
                continue
            series = [x[key] for x in rows]
            fired = fire_step(series, steps)
            rho = spearmanr(series, drop).statistic if np.ptp(drop) > 0 and np.ptp(series) > 0 else float("nan")
            lost = float(gold[peak] - gold[steps.index(fired)]) if fired is not None else None
            per[(r["objective"], key)].append({"seed": r["seed"], "peak_step": steps[peak], "fire_step": fired, "gold_lost": lost,
                                              "rho": float(rho), "series": series, "steps": steps, "gold": gold.tolist()})
    table = []
    for (objective, key), items in sorted(per.items()):
        fired = [i for i in items if i["fire_step"] is not None]
        rhos = [i["rho"] for i in items if not np.isnan(i["rho"])]
        table.append({
            "objective": objective, "detector": DETECTORS[key], "runs": len(items), "fired": len(fired),
            "fire_minus_peak": [i["fire_step"] - i["peak_step"] for i in fired],
            "gold_lost": [i["gold_lost"] for i in fired],
            "rho": rhos,
        })
    return table, per


def plot_detectors(per: dict, path: Path) -> Path:
    keys = [k for k in DETECTORS if any(key == k for _, key in per)]
    objectives = sorted({o for o, _ in per})
    fig, axes = plt.subplots(len(objectives), len(keys), figsize=(4.2 * len(keys), 3.4 * len(objectives)), dpi=100, squeeze=False)
    for i, objective in enumerate(objectives):
        for j, key in enumerate(keys):
            ax = axes[i][j]
            right = ax.twinx()
            for item in per.get((objective, key), []):
                line, = ax.plot(item["steps"], item["series"], linewidth=1.2, label=f"seed {item['seed']}")
                right.plot(item["steps"], item["gold"], color=line.get_color(), linestyle=":", linewidth=1.0)
                ax.axvline(item["peak_step"], color=line.get_color(), alpha=0.35, linestyle=":")
                if item["fire_step"] is not None:
                    ax.axvline(item["fire_step"], color=line.get_color(), alpha=0.8, linestyle="--")
            ax.set_title(f"{objective.upper()} proxy: {DETECTORS[key]}", fontsize=9)
            ax.set_xlabel("PPO step", fontsize=8)
            right.set_ylabel("gold (dotted)", fontsize=8)
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle("detectors (solid) vs gold (dotted); dashed: where the change-rate rule fires, dotted vertical: gold peak", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def write_markdown(det: list[dict], mit: dict | None, path: Path) -> None:
    lines = ["# Detectors and mitigations on the tiny pipeline", "",
             "Generated by `experiments/detectors/analyze.py` from the W&B offline runs of `run.sh`. Values: mean [95% "
             "bootstrap CI over seeds] (`inform.report.compare`), the value alone for one seed.", "",
             "## Which detector warns earliest", "",
             "| proxy | detector | fired (runs) | fire step - gold peak step | gold lost by the fire step | Spearman(detector, gold drop) |",
             "|---|---|---|---|---|---|"]
    for r in det:
        lines.append(f"| {r['objective']} | {r['detector']} | {r['fired']} / {r['runs']} | {cell(r['fire_minus_peak'], 1)} | "
                     f"{cell(r['gold_lost'])} | {cell(r['rho'])} |")
    lines += ["", "## Which mitigation keeps gold highest at equal KL (IB proxy)", ""]
    if mit is None:
        lines += [f"No `{PLAIN}` PPO run of the IB proxy to compare against.", ""]
    else:
        res = mit["results"]
        lines += [f"Against {PLAIN} PPO, paired by seed: [mitigations/results.md](mitigations/results.md) (every KL "
                  "budget, peaks, Gao et al.'s fits). Gold at KL k: at the first crossing, over the runs that reached it.", "",
                  "| method | runs | " + " | ".join(f"gold @ KL {k:g} (reached)" for k in res["budgets_kl"]) + " | peak gold |",
                  "|---|---|" + "---|" * (len(res["budgets_kl"]) + 1)]
        peaks = {r["method"]: r for r in res["peaks"]}
        for c in res["coverage"]:
            m = c["method"]
            cells = [f"{ci(r['mean'], r['mean_lo'], r['mean_hi'])} ({r['n_reached']}/{r['n_runs']})"
                     for r in res["budgets"] if r["method"] == m]
            pk = peaks[m]
            lines.append(f"| {m} | {c['runs']} | " + " | ".join(cells) +
                         f" | {ci(pk['peak_mean'], pk['peak_mean_lo'], pk['peak_mean_hi'])} |")
        lines += [""]
    path.write_text("\n".join(lines))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--no-wandb", action="store_true")
    ap.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples")
    args = ap.parse_args(argv)
    ppo = [r for r in find_runs(args.runs, merge_resumed=True) if r.job_type == "ppo"]
    runs = [describe(r) for r in ppo]
    det, per = detector_table([r for r in runs if r["method"].startswith(PLAIN)])
    args.out.mkdir(parents=True, exist_ok=True)
    images = {"analysis/detectors": plot_detectors(per, args.out / "detectors.png")}
    table = tidy([r for r in ppo if r.config["objective"]["name"] == "ib"], label=mitigation_of, jobs=("ppo",))
    mit = None
    if any(r["method"] == PLAIN for r in table):
        mit = write_report(table, args.out / "mitigations", PLAIN, title="IBL and EPPO against plain PPO (IB proxy)",
                           n_boot=args.n_boot)
        images["analysis/mitigations"] = mit["figure"]
    write_markdown(det, mit, args.out / "results.md")
    if not args.no_wandb:
        log_analysis(images, args.out, "detectors-analysis", args.out / "results.md",
                     tables={"analysis/detectors_table": det,
                             **({} if mit is None else {"analysis/mitigations_budgets": mit["results"]["budgets"],
                                                        "analysis/mitigations_budget_diff": mit["results"]["budget_diff"]})})
    print((args.out / "results.md").read_text())
    return {"detectors": det, "mitigations": None if mit is None else mit["results"]}


if __name__ == "__main__":
    main()
