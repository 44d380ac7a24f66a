"""(a) Gold and proxy reward against KL for BT, IB, BSR, ensemble-UWO, WARM and BT+KL, at
each proxy size, with and without label noise: read the PPO runs of run.sh back (W&B offline
files), draw one panel per (label noise, proxy size) and write the table.

A method is told by its run's config: the objective's name, `ensemble.members/combine`, and
`kl_coef` above the default (BT+KL). Writes methods.png and results.md next to this file
(or --out) and logs both to a W&B offline run (job type `analysis`).

    python experiments/methods/analyze.py experiments/methods/runs [--out experiments/methods]
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from inform.report.curves import plt, save_figure
from inform.report.runs import RL_JOBS, eval_rows, fmt, gold_at_kl, log_analysis
from inform.tracking.wandb_offline import find_runs

DEFAULT_KL = 0.05
KL_POINTS = (2.0, 5.0)
ORDER = ["BT", "BT+KL", "IB", "BSR", "Ensemble-UWO", "Ensemble-mean", "Ensemble-min", "WARM"]
SIZE_ORDER = ["tiny-small", "tiny", "tiny-large", "pythia-70m", "pythia-160m", "pythia-410m", "pythia-1.4b", "pythia-2.8b", "pythia-6.9b"]


def method_of(config: dict) -> str:
    name = config["objective"]["name"].upper().replace("_", "-")
    if name == "IB" and (config.get("beta"), config.get("latent_dim")) != (0.1, 128):  # the paper's defaults
        name += f" (beta {config.get('beta'):g}, d {config.get('latent_dim')})"
    ens = config.get("ensemble") or {}
    if ens.get("members", 1) > 1:
        name = "WARM" if ens["combine"] == "warm" else f"Ensemble-{ens['combine'].upper() if ens['combine'] == 'uwo' else ens['combine']}"
    if config.get("kl_coef", DEFAULT_KL) > DEFAULT_KL and name == "BT":
        name = "BT+KL"
    return name


def describe(run) -> dict:
    c = run.config
    return {"method": method_of(c), "size": c["reward"]["name"], "noise": float(c["label_noise"]), "seed": c["seed"],
            "kl_coef": c["kl_coef"], "rows": eval_rows(run)}


def key(r: dict) -> tuple:
    return (r["noise"], r["size"], r["method"], r["seed"])


def table(runs: list[dict]) -> list[dict]:
    by = defaultdict(list)
    for r in runs:
        by[(r["noise"], r["size"], r["method"])].append(r)
    out = []
    for (noise, size, method), items in sorted(by.items(), key=lambda kv: (kv[0][0], rank(kv[0][1], SIZE_ORDER), rank(kv[0][2], ORDER))):
        peaks = [max(i["rows"], key=lambda x: x["reward/gold"]) for i in items]
        row = {"noise": noise, "size": size, "method": method, "seeds": len(items),
               "sft_gold": [i["rows"][0]["reward/gold"] for i in items],
               "peak_gold": [p["reward/gold"] for p in peaks], "peak_kl": [p["eval/kl"] for p in peaks],
               "final_gold": [i["rows"][-1]["reward/gold"] for i in items], "final_kl": [i["rows"][-1]["eval/kl"] for i in items],
               "final_proxy": [i["rows"][-1]["reward/proxy_eval"] for i in items]}
        for kl in KL_POINTS:
            row[f"gold@{kl:g}"] = [v for v in (gold_at_kl(i["rows"], kl) for i in items) if v is not None]
        out.append(row)
    return out


def rank(value: str, order: list[str]) -> int:
    return order.index(value) if value in order else len(order)


def plot(runs: list[dict], path: Path, by: str = "size") -> Path:
    """by "size": a panel per (label noise, proxy size), a color per method; by "method": a
    panel per (label noise and proxy size, method), a color per seed (for several seeds)."""
    if by == "method":
        def row_of(r): return (r["noise"], rank(r["size"], SIZE_ORDER), r["size"])
        def col_of(r): return r["method"]
        def color_of(r): return f"seed {r['seed']}"
        def title(row, col): return f"{col}: proxy {row[2]}, noise {row[0]:g}"
    else:
        def row_of(r): return r["noise"]
        def col_of(r): return r["size"]
        def color_of(r): return r["method"]
        def title(row, col): return f"proxy {col}, label noise {row:g}"
    rows = sorted({row_of(r) for r in runs})
    cols = sorted({col_of(r) for r in runs}, key=lambda c: (rank(c, SIZE_ORDER), rank(c, ORDER), c))
    labels = sorted({color_of(r) for r in runs}, key=lambda m: (rank(m, ORDER), m))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {m: cycle[i % len(cycle)] for i, m in enumerate(labels)}
    ncols = len(cols) if by == "size" else min(3, len(cols))  # methods wrap, 3 to a line; each row starts a line
    lines = -(-len(cols) // ncols)
    fig, axes = plt.subplots(len(rows) * lines, ncols, figsize=(4.6 * ncols, 3.6 * len(rows) * lines), dpi=100, squeeze=False,
                             sharey=True)
    for ax in axes.flat:
        ax.set_visible(False)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i * lines + j // ncols][j % ncols]
            ax.set_visible(True)
            for r in (r for r in runs if row_of(r) == row and col_of(r) == col):
                kl, color = [x["eval/kl"] for x in r["rows"]], colors[color_of(r)]
                ax.plot(kl, [x["reward/gold"] for x in r["rows"]], color=color, linewidth=1.6, label=color_of(r))
                ax.plot(kl, [x["reward/proxy_eval"] for x in r["rows"]], color=color, linewidth=0.8, linestyle=":", alpha=0.7)
            ax.axhline(0.0, color="grey", linewidth=0.6)
            ax.set_title(title(row, col), fontsize=9)
            ax.set_xlabel("KL(pi || pi_ref) per response (nats)", fontsize=8)
            if j % ncols == 0:
                ax.set_ylabel("reward (SD units of SFT samples)", fontsize=8)
            ax.grid(alpha=0.3)
    handles = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle("gold RM (solid) and proxy RM (dotted) against KL, per method" + (", per seed" if by == "method" else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save_figure(fig, path)


def write_markdown(rows: list[dict], path: Path) -> None:
    lines = ["# Methods against over-optimization on the tiny pipeline", "",
             "Generated by `experiments/methods/analyze.py` from the W&B offline runs of `run.sh`. Rewards in SD units of "
             "the SFT samples (gold 0 = the SFT policy's level); KL per response in nats.", "",
             "| label noise | proxy | method | seeds | SFT gold | peak gold | KL at peak | gold @ KL 2 | gold @ KL 5 | final gold | final KL | final proxy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['noise']:g} | {r['size']} | {r['method']} | {r['seeds']} | {fmt(r['sft_gold'])} | {fmt(r['peak_gold'])} | "
                     f"{fmt(r['peak_kl'], 1)} | {fmt(r['gold@2'])} | {fmt(r['gold@5'])} | {fmt(r['final_gold'])} | "
                     f"{fmt(r['final_kl'], 1)} | {fmt(r['final_proxy'])} |")
    lines += ["", "gold @ KL k: interpolated between eval points, over the runs that reached that KL (`n/a`: none did).", ""]
    path.write_text("\n".join(lines))


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--no-wandb", action="store_true")
    ap.add_argument("--panels", choices=["size", "method"], default="size",
                    help="a panel per proxy size (a color per method), or per method (a color per seed)")
    ap.add_argument("--fill-from", type=Path, nargs="*", default=[],
                    help="other sweep folders sharing the artifact cache: a point whose PPO stage came from the cache "
                         "logged no run here, but the experiment that built it did")
    args = ap.parse_args(argv)
    runs = [r for r in (describe(x) for x in find_runs(args.runs, merge_resumed=True) if x.job_type in RL_JOBS) if r["rows"]]
    have = {key(r) for r in runs}
    for folder in args.fill_from:
        for r in (describe(x) for x in find_runs(folder, merge_resumed=True) if x.job_type in RL_JOBS):
            if r["rows"] and r["method"] in ORDER and key(r) not in have:
                runs.append(r)
                have.add(key(r))
    if not runs:
        raise SystemExit(f"{args.runs}: no PPO runs with eval steps found")
    rows = table(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    images = {"analysis/methods": plot(runs, args.out / "methods.png", by=args.panels)}
    write_markdown(rows, args.out / "results.md")
    if not args.no_wandb:
        log_analysis(images, args.out, "methods-analysis", args.out / "results.md")
    print((args.out / "results.md").read_text())
    return rows


if __name__ == "__main__":
    main()
