"""Read the detector and mitigation runs back (W&B offline files) and answer two questions:

1. Which detector warns earliest? For each PPO run of the `detectors` sweep (BT and IB
   proxies, every detector on) and each detector metric: the step where the change-rate rule
   (e_t > 10, InfoRM appendix G) would fire against the step of the gold peak, the gold lost
   by then, and the Spearman rank correlation between the detector and the drop of gold
   from its running peak.
2. Which mitigation keeps gold highest at equal KL? Plain PPO vs IBL vs EPPO (the
   `mitigations` sweep, IB proxy): gold against KL, mean over seeds, and gold at fixed KL.

Writes detectors.png, mitigations.png and results.md next to this file (or --out), and logs
both figures to a W&B offline run (job type `analysis`).

    python experiments/detectors/analyze.py experiments/detectors/runs [--out experiments/detectors]
"""
from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from inform.report.curves import plt, save_figure
from inform.report.runs import eval_rows, fire_step, fmt, gold_at_kl, log_analysis
from inform.tracking.wandb_offline import find_runs

DETECTORS = {"csi/value": "CSI", "detect/mahalanobis_mean": "Mahalanobis", "detect/mop": "MOP", "detect/energy_gap": "energy gap"}
KL_POINTS = (1.0, 2.0, 5.0)


def describe(run) -> dict:
    c = run.config
    method = "plain"
    if c.get("ibl_coef"):
        method = f"IBL {c['ibl_coef']:g}"
    elif c.get("energy_coef"):
        method = f"EPPO {c['energy_coef']:g}"
    return {"objective": c["objective"]["name"], "seed": c["seed"], "method": method, "rows": eval_rows(run), "name": c.get("name")}


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
            "rho_mean": statistics.mean(rhos) if rhos else float("nan"), "rho_sd": statistics.pstdev(rhos) if len(rhos) > 1 else 0.0,
        })
    return table, per


def mitigation_table(runs: list[dict]) -> list[dict]:
    by = defaultdict(list)
    for r in runs:
        by[r["method"]].append(r)
    table = []
    for method, items in sorted(by.items(), key=lambda kv: (kv[0] != "plain", kv[0])):
        row = {"method": method, "seeds": len(items)}
        for kl in KL_POINTS:
            vals = [v for v in (gold_at_kl(i["rows"], kl) for i in items) if v is not None]
            row[f"gold@{kl:g}"] = vals
        row["peak"] = [max(x["reward/gold"] for x in i["rows"]) for i in items]
        row["final_gold"] = [i["rows"][-1]["reward/gold"] for i in items]
        row["final_kl"] = [i["rows"][-1]["eval/kl"] for i in items]
        table.append(row)
    return table


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


def plot_mitigations(runs: list[dict], path: Path) -> Path:
    by = defaultdict(list)
    for r in runs:
        by[r["method"]].append(r)
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, (method, items) in enumerate(sorted(by.items(), key=lambda kv: (kv[0] != "plain", kv[0]))):
        color = "black" if method == "plain" else colors[n % len(colors)]
        for k, item in enumerate(items):
            ax.plot([x["eval/kl"] for x in item["rows"]], [x["reward/gold"] for x in item["rows"]], color=color,
                    linewidth=2.0 if method == "plain" else 1.1, alpha=0.8, label=method if k == 0 else None,
                    linestyle="-" if method == "plain" or method.startswith("IBL") else "--")
    ax.set_xlabel("KL(pi || pi_ref) per response (nats)")
    ax.set_ylabel("gold reward (SD units of SFT samples)")
    ax.set_title("plain PPO vs IBL vs EPPO, IB proxy (one line per seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)


def write_markdown(det: list[dict], mit: list[dict], path: Path) -> None:
    lines = ["# Detectors and mitigations on the tiny pipeline", "",
             "Generated by `experiments/detectors/analyze.py` from the W&B offline runs of `run.sh`.", "",
             "## Which detector warns earliest", "",
             "| proxy | detector | fired (runs) | fire step - gold peak step | gold lost by the fire step | Spearman(detector, gold drop) |",
             "|---|---|---|---|---|---|"]
    for r in det:
        lines.append(f"| {r['objective']} | {r['detector']} | {r['fired']} / {r['runs']} | {fmt(r['fire_minus_peak'], 1)} | "
                     f"{fmt(r['gold_lost'])} | {r['rho_mean']:.2f} ± {r['rho_sd']:.2f} |")
    lines += ["", "## Which mitigation keeps gold highest at equal KL (IB proxy)", "",
              "| method | seeds | gold @ KL 1 | gold @ KL 2 | gold @ KL 5 | peak gold | final gold | final KL |", "|---|---|---|---|---|---|---|---|"]
    for r in mit:
        lines.append(f"| {r['method']} | {r['seeds']} | {fmt(r['gold@1'])} | {fmt(r['gold@2'])} | {fmt(r['gold@5'])} | {fmt(r['peak'])} | "
                     f"{fmt(r['final_gold'])} | {fmt(r['final_kl'], 1)} |")
    lines += ["", "Values: mean ± sd over seeds; gold @ KL k is interpolated between eval points, over the seeds whose "
              "run reached that KL; `n/a`: none did.", ""]
    path.write_text("\n".join(lines))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--no-wandb", action="store_true")
    args = ap.parse_args(argv)
    runs = [describe(r) for r in find_runs(args.runs, merge_resumed=True) if r.job_type == "ppo"]
    det_runs = [r for r in runs if r["method"] == "plain"]
    det, per = detector_table(det_runs)
    mit_runs = [r for r in runs if r["objective"] == "ib"]
    mit = mitigation_table(mit_runs)
    args.out.mkdir(parents=True, exist_ok=True)
    images = {"analysis/detectors": plot_detectors(per, args.out / "detectors.png"),
              "analysis/mitigations": plot_mitigations(mit_runs, args.out / "mitigations.png")}
    write_markdown(det, mit, args.out / "results.md")
    if not args.no_wandb:
        (args.runs / "analysis").mkdir(parents=True, exist_ok=True)
        log_analysis(images, args.out, "detectors-analysis", args.out / "results.md")
    print((args.out / "results.md").read_text())
    return {"detectors": det, "mitigations": mit}


if __name__ == "__main__":
    main()
