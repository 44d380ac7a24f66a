"""(a) Methods against over-optimization: the comparison at matched KL over seeds, and the
one-seed grid over proxy sizes and label noise. Every number comes from `inform.report.compare`.

compare: the grid methods/compare (BT, BT+KL, IB beta 0.1 and 0.001, BSR, Ensemble-UWO, WARM;
ten seeds) against BT: each method's gold on a common KL grid with bootstrap intervals over
seeds, the paired difference to BT, gold at KL budgets, the peak, Gao et al.'s fits. Inputs
are sweep folders (W&B offline runs at any depth: a local `run.py -m` folder or a Slurm
sweep's) and tidy CSVs. Each folder's runs are saved as `<out>/tidy/<folder name>.csv` (a
chunk of seeds: commit it), then every CSV under `<out>/tidy/` is merged with them, so an
analysis on a clean clone reads the committed chunks; the report names the missing points.

    python experiments/methods/analyze.py compare experiments/methods/runs/compare/seeds_0-4 \
        --out experiments/methods/compare
    python experiments/methods/analyze.py compare --out experiments/methods/compare   # the committed chunks only

grid: the one-seed grids methods/{objectives,ensembles,bt_kl}: gold and proxy against KL, a
panel per (label noise, proxy size), and the table of peak and gold at KL budgets.

    python experiments/methods/analyze.py grid experiments/methods/runs [--out experiments/methods]

Both write a PNG and results.md and log them (with the tables) to a W&B offline run of job
type `analysis`. A method is told by its run's config (`method_of`).
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from inform.report.compare import on_kl_grid, peak, read_tidy, summarize, tidy, write_csv, write_report
from inform.report.compare.report import summary_ci as cell
from inform.report.curves import plt, save_figure
from inform.report.runs import log_analysis
from inform.tracking.wandb_offline import find_runs

HERE = Path(__file__).resolve().parent
DEFAULT_KL = 0.05
DEFAULT_POINT = ("tiny", 0.25)  # conf/config.yaml: model@reward, label_noise
BASELINE = "BT"
ORDER = ["BT", "BT+KL", "IB", "IB (beta 0.001)", "BSR", "Ensemble-UWO", "Ensemble-mean", "Ensemble-min", "WARM"]
COMPARED = ["BT", "BT+KL", "IB", "IB (beta 0.001)", "BSR", "Ensemble-UWO", "WARM"]  # conf/grid/methods/compare.yaml
SEEDS = 10  # ... with seed: range(0,10)
SIZE_ORDER = ["tiny-small", "tiny", "tiny-large", "pythia-70m", "pythia-160m", "pythia-410m", "pythia-1.4b", "pythia-2.8b",
              "pythia-6.9b"]
KL_POINTS = (2.0, 5.0)  # the grid table's budgets


def method_of(config: dict) -> str:
    """BT, BT+KL (BT with kl_coef above 0.05), IB (beta 0.1, latent_dim 128: the paper's; other
    values named), BSR, Ensemble-<combine> or WARM (ensemble.members > 1), from a run's config."""
    name = config["objective"]["name"].upper().replace("_", "-")
    if name == "IB" and (config.get("beta"), config.get("latent_dim")) != (0.1, 128):
        name += f" (beta {config.get('beta'):g}" + ("" if config.get("latent_dim") == 128 else f", d {config.get('latent_dim')}") + ")"
    ens = config.get("ensemble") or {}
    if ens.get("members", 1) > 1:
        name = "WARM" if ens["combine"] == "warm" else f"Ensemble-{ens['combine'].upper() if ens['combine'] == 'uwo' else ens['combine']}"
    if config.get("kl_coef", DEFAULT_KL) > DEFAULT_KL and name == "BT":
        name = "BT+KL"
    return name


def point_of(config: dict) -> tuple[str, float]:
    return config["reward"]["name"], float(config["label_noise"])


def compare_label(config: dict) -> str:
    """The method; the proxy size and label noise too where they are not the default point."""
    size, noise = point_of(config)
    return method_of(config) + ("" if (size, noise) == DEFAULT_POINT else f" [{size}, noise {noise:g}]")


def rank(value: str, order: list[str]) -> int:
    return order.index(value) if value in order else len(order)


# ---------------------------------------------------------------------------- compare
def gather(inputs: list[Path], tidy_dir: Path) -> tuple[list[dict], list[str]]:
    """The tidy table of every input, and where each part came from. A folder's runs are
    written to tidy_dir/<folder name>.csv first; then every CSV of tidy_dir and each CSV input
    is read (a chunk once, however it was named)."""
    tidy_dir.mkdir(parents=True, exist_ok=True)
    csvs, sources = [], []
    for path in inputs:
        if path.is_dir():
            rows = tidy(find_runs(path, merge_resumed=True), label=compare_label)
            if not rows:
                raise SystemExit(f"{path}: no PPO runs with eval steps found")
            csvs.append(write_csv(rows, tidy_dir / f"{path.name}.csv"))
            sources.append(f"{path} -> {csvs[-1]}")
        elif path.suffix == ".csv":
            csvs.append(path)
        else:
            raise SystemExit(f"{path}: neither a sweep folder nor a tidy .csv")
    csvs += [p for p in sorted(tidy_dir.glob("*.csv")) if p.resolve() not in {c.resolve() for c in csvs}]
    table = read_tidy(*csvs)
    sources += [str(p) for p in csvs if not any(s.endswith(str(p)) for s in sources)]
    return table, sources


def run_compare(args) -> dict:
    table, sources = gather(args.inputs, args.out / "tidy")
    if not table:
        raise SystemExit(f"no runs: give a sweep folder or a tidy CSV, or commit chunks under {args.out / 'tidy'}")
    report = write_report(table, args.out, BASELINE, title="Methods at matched KL: gold reward against BT",
                          expected_seeds=range(args.seeds), expected_methods=COMPARED, n_boot=args.n_boot)
    md = report["results_md"]
    md.write_text(md.read_text() + "\nInputs (a tidy CSV per chunk of seeds, merged):\n\n" +
                  "".join(f"- `{s}`\n" for s in sources))
    res = report["results"]
    if not args.no_wandb:
        log_analysis({"analysis/methods_compare": report["figure"]}, args.out, "methods-compare-analysis", md,
                     tables={"analysis/coverage": res["coverage"], "analysis/budgets": res["budgets"],
                             "analysis/budget_diff": res["budget_diff"], "analysis/peaks": res["peaks"],
                             "analysis/fits": res["fits"]})
    print(md.read_text())
    return report


# ---------------------------------------------------------------------------- grid (one seed a point)
def describe(run) -> dict:
    size, noise = point_of(run.config)
    return {"method": method_of(run.config), "size": size, "noise": noise, "seed": run.config["seed"],
            "rows": [r for r in tidy([run]) if np.isfinite(r["reward/gold"])]}


def grid_table(runs: list[dict], n_boot: int) -> list[dict]:
    """Per (noise, size, method): the SFT gold (step 0), peak gold and its KL, gold at KL 2 and
    5 (first crossing, `on_kl_grid`), final gold, KL and proxy; mean [95% CI] over seeds."""
    by = defaultdict(list)
    for r in runs:
        by[(r["noise"], r["size"], r["method"])].append(r)
    out = []
    for (noise, size, method), items in sorted(by.items(), key=lambda kv: (kv[0][0], rank(kv[0][1], SIZE_ORDER), rank(kv[0][2], ORDER))):
        def col(f):
            return summarize(np.array([f(i["rows"]) for i in items], dtype=float), n_boot=n_boot)
        kl = [np.array([x["eval/kl"] for x in i["rows"]]) for i in items]
        peaks = [peak(k, [x["reward/gold"] for x in i["rows"]]) for k, i in zip(kl, items)]  # (gold, KL) per run
        row = {"noise": noise, "size": size, "method": method, "seeds": len(items),
               "sft_gold": col(lambda rs: rs[0]["reward/gold"]),
               "peak_gold": summarize(np.array([p[0] for p in peaks]), n_boot=n_boot),
               "peak_kl": summarize(np.array([p[1] for p in peaks]), n_boot=n_boot),
               "final_gold": col(lambda rs: rs[-1]["reward/gold"]), "final_kl": col(lambda rs: rs[-1]["eval/kl"]),
               "final_proxy": col(lambda rs: rs[-1]["reward/proxy_eval"])}
        for k in KL_POINTS:
            vals = [on_kl_grid(k_, [x["reward/gold"] for x in i["rows"]], [k])[0] for k_, i in zip(kl, items)]
            row[f"gold@{k:g}"] = summarize(np.array(vals), n_boot=n_boot)
        out.append(row)
    return out


def plot_grid(runs: list[dict], path: Path) -> Path:
    """A panel per (label noise, proxy size), a color per method (each seed a line)."""
    rows = sorted({r["noise"] for r in runs})
    cols = sorted({r["size"] for r in runs}, key=lambda c: (rank(c, SIZE_ORDER), c))
    labels = sorted({r["method"] for r in runs}, key=lambda m: (rank(m, ORDER), m))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {m: cycle[i % len(cycle)] for i, m in enumerate(labels)}
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.6 * len(cols), 3.6 * len(rows)), dpi=100, squeeze=False,
                             sharey=True)
    for i, noise in enumerate(rows):
        for j, size in enumerate(cols):
            ax = axes[i][j]
            for r in (r for r in runs if (r["noise"], r["size"]) == (noise, size)):
                kl, color = [x["eval/kl"] for x in r["rows"]], colors[r["method"]]
                ax.plot(kl, [x["reward/gold"] for x in r["rows"]], color=color, linewidth=1.6, label=r["method"])
                ax.plot(kl, [x["reward/proxy_eval"] for x in r["rows"]], color=color, linewidth=0.8, linestyle=":", alpha=0.7)
            ax.axhline(0.0, color="grey", linewidth=0.6)
            ax.set_title(f"proxy {size}, label noise {noise:g}", fontsize=9)
            ax.set_xlabel("KL(pi || pi_ref) per response (nats)", fontsize=8)
            if j == 0:
                ax.set_ylabel("reward (SD units of SFT samples)", fontsize=8)
            ax.grid(alpha=0.3)
    handles = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle("gold RM (solid) and proxy RM (dotted) against KL, per method", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save_figure(fig, path)


def write_grid_markdown(rows: list[dict], path: Path) -> None:
    lines = ["# Methods against over-optimization on the tiny pipeline: sizes and label noise", "",
             "Generated by `experiments/methods/analyze.py grid` from the W&B offline runs of the grids methods/objectives, "
             "methods/ensembles and methods/bt_kl. Rewards in SD units of the SFT samples (gold 0 = the SFT policy's "
             "level); KL per response in nats. With several seeds a cell is mean [95% bootstrap CI]; with one seed it "
             "is that seed's value, and no claim rests on it: the comparison with intervals is compare/results.md.", "",
             "| label noise | proxy | method | seeds | SFT gold | peak gold | KL at peak | gold @ KL 2 | gold @ KL 5 | final gold | final KL | final proxy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['noise']:g} | {r['size']} | {r['method']} | {r['seeds']} | {cell(r['sft_gold'])} | "
                     f"{cell(r['peak_gold'])} | {cell(r['peak_kl'], 1)} | {cell(r['gold@2'])} | {cell(r['gold@5'])} | "
                     f"{cell(r['final_gold'])} | {cell(r['final_kl'], 1)} | {cell(r['final_proxy'])} |")
    lines += ["", "gold @ KL k: at the first crossing of k, linear between eval points, over the runs that reached it "
              "(`n/a`: none did).", ""]
    path.write_text("\n".join(lines))


def run_grid(args) -> list[dict]:
    runs = [r for r in (describe(x) for x in find_runs(args.inputs[0], merge_resumed=True)) if r["rows"]]
    have = {(r["noise"], r["size"], r["method"], r["seed"]) for r in runs}
    for folder in args.fill_from:
        for r in (describe(x) for x in find_runs(folder, merge_resumed=True)):
            k = (r["noise"], r["size"], r["method"], r["seed"])
            if r["rows"] and r["method"] in ORDER and k not in have:
                runs.append(r)
                have.add(k)
    if not runs:
        raise SystemExit(f"{args.inputs[0]}: no PPO runs with eval steps found")
    rows = grid_table(runs, args.n_boot)
    args.out.mkdir(parents=True, exist_ok=True)
    images = {"analysis/methods": plot_grid(runs, args.out / "methods.png")}
    write_grid_markdown(rows, args.out / "results.md")
    if not args.no_wandb:
        log_analysis(images, args.out, "methods-analysis", args.out / "results.md")
    print((args.out / "results.md").read_text())
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("compare", help="the methods at matched KL over seeds (grid methods/compare)")
    c.add_argument("inputs", type=Path, nargs="*", help="sweep folders (W&B offline runs) and tidy CSVs")
    c.add_argument("--out", type=Path, default=HERE / "compare")
    c.add_argument("--seeds", type=int, default=SEEDS, help="the sweep's seeds, 0..n-1 (the missing ones are reported)")
    g = sub.add_parser("grid", help="one seed a point: proxy sizes x label noise (grids objectives, ensembles, bt_kl)")
    g.add_argument("inputs", type=Path, nargs=1, help="the sweep folder")
    g.add_argument("--out", type=Path, default=HERE)
    g.add_argument("--fill-from", type=Path, nargs="*", default=[],
                   help="other sweep folders sharing the artifact cache: a point whose PPO stage came from the cache "
                        "logged no run here, but the experiment that built it did")
    for p in (c, g):
        p.add_argument("--no-wandb", action="store_true")
        p.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples")
    args = ap.parse_args(argv)
    return run_compare(args) if args.what == "compare" else run_grid(args)


if __name__ == "__main__":
    main()
