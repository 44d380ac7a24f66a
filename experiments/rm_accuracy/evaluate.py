"""Reward-model accuracy on held-out preference sets, through the real loaders (issue 8, (d)).

For each reward-model export (a `rm-<hash>/` folder of the stage cache) and each evaluation
set of N pairs (x_i, y_i^w, y_i^l), with r = the RM's raw score (the eval-mode head: the IB
posterior mean mu is decoded, no sampling):

    d_i      = r(x_i, y_i^w) - r(x_i, y_i^l)           the margin of pair i
    accuracy = k / N,   k = #{i : d_i > 0}             (a tie counts as wrong)
    SE       = sqrt(accuracy (1 - accuracy) / N)       binomial standard error
    margin   = (1/N) sum_i d_i,  and margin / sigma_r  with sigma_r the std of the RM's scores
                                                       on its training responses (score_stats.json)

Texts are tokenized exactly as the pipeline does it (`inform.pipeline.reward_fit.pair_examples`):
the prompt keeps its last `max_prompt_tokens` tokens, each response is cut to
`max_response_tokens` (EOS appended when it fits). The limits come from the RM's spec.json
(`max_tokens`, what it was trained with), or from --max-prompt-tokens / --max-response-tokens,
else the HH config's 512 / 256.

Default evaluation sets (each a loader of inform/data/sources.py, so the rows are the ones a
training run would see):

    hh-helpful   hh_rlhf_preferences(Anthropic/hh-rlhf, data_dir=helpful-base, split=test)
    hh-harmless  hh_rlhf_preferences(Anthropic/hh-rlhf, data_dir=harmless-base, split=test)
    alpaca-farm  alpaca_farm_preferences(tatsu-lab/alpaca_farm, alpaca_human_preference)
                 (AlpacaFarm's human preferences: in-distribution for an RM trained on them)
    tldr         tldr_preferences(openai/summarize_from_feedback, comparisons, split=validation)
    synthetic    synthetic_preferences(n=2000, seed=5): the synthetic task's "human" pairs,
                 a seed the pipeline never trains on (the gold RM uses seed 2)

Override or add one with --set NAME=LOADER:PATH[:SUBSET[:SPLIT]], LOADER one of hh, alpaca,
tldr (SUBSET: HH's data_dir, the config name of the others; PATH a hub id or a local file in
the public schema), or NAME=synthetic[:N[:SEED]]; --only picks the sets to run. A set that
cannot be loaded (no network, no such file) is skipped with a warning naming it; if none
loads the script stops.

What the numbers mean. At the tiny scale (`run.sh --tiny`) the RMs are 2-layer models trained
on the synthetic task with a tokenizer trained on its words: on HH, AlpacaFarm and TL;DR
their accuracy is chance (~0.5) and the point is that the real data path runs end to end;
only the synthetic column says something. With real RMs (Pythia trained on HH, `run.sh`
on a GPU) the table is the usual RM accuracy table: in-distribution (hh-helpful) and
transfer (hh-harmless, AlpacaFarm, TL;DR) per objective.

Writes results.md and rm_accuracy.png to --out, and logs both to a W&B offline run (job type
`analysis`) under --out unless --no-wandb.

    python experiments/rm_accuracy/evaluate.py artifacts [more exports or folders] \\
        [--stages rm] [--limit 2000] [--set hh-helpful=hh:my/hh.jsonl] [--only hh-helpful,synthetic] \\
        [--out experiments/rm_accuracy] [--device cuda] [--dtype bfloat16] [--no-wandb]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

from inform.data import sources
from inform.models.reward_model import META_FILE, RewardModel
from inform.models.tokenizer import tokenizer_from
from inform.runtime.cache import COMPLETE, SPEC
from inform.pipeline.reward_fit import SCORE_STATS, pair_examples, score_pairs
from inform.report.curves import plt, save_figure

log = logging.getLogger("inform.rm_accuracy")
DEFAULT_MAX_TOKENS = (512, 256)  # conf/data/hh_rlhf.yaml: max_prompt_tokens, max_response_tokens
LOADERS = {
    "hh": sources.hh_rlhf_preferences, "alpaca": sources.alpaca_farm_preferences,
    "tldr": sources.tldr_preferences, "synthetic": sources.synthetic_preferences,
}
SUBSET_KEY = {"hh": "data_dir", "alpaca": "name", "tldr": "name"}


# --------------------------------------------------------------------------- evaluation sets
@dataclass
class EvalSet:
    name: str
    loader: str  # a key of LOADERS
    kwargs: dict = field(default_factory=dict)

    def load(self, limit: int | None):
        return LOADERS[self.loader](**self.kwargs, limit=limit)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{LOADERS[self.loader].__name__}({args})"


DEFAULT_SETS = [
    EvalSet("hh-helpful", "hh", {"path": "Anthropic/hh-rlhf", "data_dir": "helpful-base", "split": "test"}),
    EvalSet("hh-harmless", "hh", {"path": "Anthropic/hh-rlhf", "data_dir": "harmless-base", "split": "test"}),
    EvalSet("alpaca-farm", "alpaca", {"path": "tatsu-lab/alpaca_farm", "name": "alpaca_human_preference", "split": "preference"}),
    EvalSet("tldr", "tldr", {"path": "openai/summarize_from_feedback", "name": "comparisons", "split": "validation"}),
    EvalSet("synthetic", "synthetic", {"n": 2000, "seed": 5}),
]


def parse_set(text: str) -> EvalSet:
    """'NAME=LOADER:PATH[:SUBSET[:SPLIT]]' or 'NAME=synthetic[:N[:SEED]]' -> EvalSet."""
    name, sep, spec = text.partition("=")
    parts = spec.split(":")
    if not sep or not name or parts[0] not in LOADERS:
        raise ValueError(f"--set {text!r}: expected NAME=LOADER:PATH[:SUBSET[:SPLIT]] with LOADER one of {', '.join(LOADERS)}")
    loader, rest = parts[0], parts[1:]
    if loader == "synthetic":
        if len(rest) > 2 or not all(x.isdigit() for x in rest):
            raise ValueError(f"--set {text!r}: synthetic takes NAME=synthetic[:N[:SEED]] (integers)")
        return EvalSet(name, loader, dict(zip(("n", "seed"), map(int, rest))))
    if not rest or not rest[0] or len(rest) > 3:
        raise ValueError(f"--set {text!r}: expected NAME={loader}:PATH[:SUBSET[:SPLIT]]")
    kwargs = {"path": rest[0]}
    if len(rest) > 1 and rest[1]:
        kwargs[SUBSET_KEY[loader]] = rest[1]
    if len(rest) > 2 and rest[2]:
        kwargs["split"] = rest[2]
    return EvalSet(name, loader, kwargs)


def choose_sets(overrides: list[str], only: str | None) -> list[EvalSet]:
    """The default sets, each --set replacing the one of its name (or added), filtered by --only."""
    sets = {s.name: s for s in DEFAULT_SETS}
    for text in overrides:
        s = parse_set(text)
        sets[s.name] = s
    if only:
        names = [n.strip() for n in only.split(",") if n.strip()]
        unknown = [n for n in names if n not in sets]
        if unknown:
            raise ValueError(f"--only: unknown set(s) {', '.join(unknown)} (known: {', '.join(sets)})")
        return [sets[n] for n in names]
    return list(sets.values())


def load_sets(sets: list[EvalSet], limit: int | None) -> tuple[dict, dict[str, str]]:
    """({name: rows}, {name: why it was skipped}); stops when no set loads at all."""
    loaded, skipped = {}, {}
    for s in sets:
        try:
            loaded[s.name] = s.load(limit)
            log.info("set %s: %d pairs from %s", s.name, len(loaded[s.name]), s.describe())
        except Exception as err:  # noqa: BLE001  (no network, hub error, missing file, wrong schema: skip the set)
            skipped[s.name] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            log.warning("set %s skipped: %s could not be loaded (%s)", s.name, s.describe(), skipped[s.name])
    if not loaded:
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise RuntimeError(f"no evaluation set could be loaded ({reasons}); point --set at local files in the public schema")
    return loaded, skipped


# --------------------------------------------------------------------------- reward models
def find_exports(paths: list[Path], stages: list[str]) -> list[Path]:
    """Export folders: a path holding reward_model.json is one; a folder is searched for
    complete `<stage>-<hash>/` exports (a folder without the COMPLETE marker is skipped)."""
    found = []
    for p in paths:
        if (p / META_FILE).is_file():
            found.append(p)
            continue
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: neither a reward-model export nor a folder of them")
        hits = sorted(d for st in stages for d in p.glob(f"{st}-*") if d.is_dir() and (d / META_FILE).is_file())
        for d in hits:
            if (d / COMPLETE).is_file():
                found.append(d)
            else:
                log.warning("%s: no %s marker (an interrupted build?): skipped", d, COMPLETE)
    if not found:
        raise FileNotFoundError(f"no reward-model export ({', '.join(s + '-*' for s in stages)} with {COMPLETE}) in "
                                f"{', '.join(map(str, paths))}")
    return found


def read_spec(export: Path) -> dict:
    """The config values an export was built from (its spec.json, written by the stage table,
    inform/pipeline/graph.py: {"keys": {dotted key: value}, "upstream": {stage: hash}, ...}),
    flat: {key: value}, plus `member` (an ensemble member's index) and `members` (WARM's)."""
    f = export / SPEC
    if not f.is_file():
        return {}
    spec = json.loads(f.read_text())
    flat = dict(spec.get("keys", {}))
    flat["member"] = spec.get("member")
    if export.name.startswith("warm-"):
        flat["members"] = [u for u in spec.get("upstream", {}) if u.startswith("rm")]
    return flat


def attributes(export: Path, spec: dict) -> dict:
    """What tells RMs apart, from their spec.json: objective and its knobs, model, data, seed."""
    objective = spec.get("objective") or {}
    loss = objective.get("loss") or {}
    stage = export.name.rsplit("-", 1)[0]
    a = {"objective": objective.get("name") or ("bt" if stage == "gold" else stage)}
    for key, sym in (("beta", "β"), ("bsr_lambda", "λ"), ("margin", "m")):
        if key in loss:
            a[sym] = loss[key]
    if (objective.get("head") or {}).get("kind") == "ib":
        a["D"] = objective["head"].get("latent_dim")
    model = spec.get("reward") or spec.get("gold_model") or {}
    a["model"] = model.get("name")
    rm = spec.get("rm") or spec.get("gold") or {}
    a["data"], a["init"] = rm.get("data"), rm.get("init")
    a["seed"], a["member"] = spec.get("seed"), spec.get("member")
    if stage != "rm":
        a["stage"] = stage
    if "members" in spec:  # warm-*: the averaged members' hashes
        a["members"] = len(spec["members"])
    return a


LABEL_ORDER = ("objective", "β", "λ", "m", "D", "model", "data", "init", "stage", "members", "seed", "member")
ALWAYS = ("β", "λ", "m", "stage", "members", "member")  # shown wherever an RM has them


def labels(exports: list[Path]) -> list[str]:
    """Short unique labels: the objective, its knobs, and the attributes whose values differ
    between the RMs (the folder name added where two still read the same)."""
    attrs = [attributes(e, read_spec(e)) for e in exports]
    varies = {k for k in LABEL_ORDER if len({json.dumps(a[k]) for a in attrs if a.get(k) is not None}) > 1}
    out = []
    for a in attrs:
        parts = [str(a["objective"])] + [f"{k}={a[k]:g}" if isinstance(a[k], float) else f"{k}={a[k]}"
                                         for k in LABEL_ORDER[1:] if a.get(k) is not None and (k in ALWAYS or k in varies)]
        out.append(" ".join(parts))
    dupes = {x for x in out if out.count(x) > 1}
    return [f"{x} ({e.name})" if x in dupes else x for x, e in zip(out, exports)]


def token_limits(spec: dict, max_prompt: int | None, max_response: int | None) -> tuple[int, int]:
    """CLI flags first, then the RM's training limits (spec.json), then 512 / 256."""
    trained = (spec.get("data.max_prompt_tokens"), spec.get("data.max_response_tokens"))
    trained = trained if None not in trained else DEFAULT_MAX_TOKENS
    return (max_prompt or int(trained[0]), max_response or int(trained[1]))


# --------------------------------------------------------------------------- the math
@torch.no_grad()
def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor, score_std: float | None = None) -> dict:
    """accuracy = mean 1[d > 0], SE = sqrt(acc (1 - acc) / N), margin = mean d, with
    d = r_chosen - r_rejected, each (N,); `margin_sd` = margin / score_std when given."""
    d = (r_chosen - r_rejected).double()
    n = d.numel()
    acc = (d > 0).double().mean().item()
    out = {"n": n, "accuracy": acc, "se": math.sqrt(acc * (1 - acc) / n), "margin": d.mean().item()}
    out["margin_sd"] = out["margin"] / score_std if score_std else None
    return out


def evaluate_export(export: Path, sets: dict, *, max_prompt: int | None, max_response: int | None,
                    batch_size: int, device: str, dtype: str) -> dict[str, dict]:
    """{set name: pairwise_accuracy(...)} of one RM export on every loaded set."""
    spec = read_spec(export)
    p_max, r_max = token_limits(spec, max_prompt, max_response)
    model = RewardModel.from_pretrained(export, dtype)
    positions = getattr(model.backbone.config, "max_position_embeddings", None)
    if positions and p_max + r_max > positions:
        raise ValueError(f"{export}: {p_max} prompt + {r_max} response tokens exceed the model's {positions} positions "
                         "(lower --max-prompt-tokens / --max-response-tokens)")
    tokenizer = tokenizer_from(export)
    cfg = OmegaConf.create({"data": {"max_prompt_tokens": p_max, "max_response_tokens": r_max, "on_long_prompt": "truncate"}})
    stats_file = export / SCORE_STATS
    score_std = json.loads(stats_file.read_text())["std"] if stats_file.is_file() else None
    results = {}
    for name, rows in sets.items():
        examples = pair_examples(tokenizer, rows, cfg)
        r_c, r_r = score_pairs(model, examples, tokenizer.pad_token_id, batch_size, device)
        results[name] = {**pairwise_accuracy(r_c, r_r, score_std), "max_tokens": [p_max, r_max]}
    del model
    return results


# --------------------------------------------------------------------------- outputs
def plot(table: dict[str, dict[str, dict]], set_names: list[str], path: Path) -> Path:
    """Grouped bars: one group per set, one bar per RM, binomial SE as error bars, chance at 0.5."""
    rms = list(table)
    width = 0.8 / max(len(rms), 1)
    fig, ax = plt.subplots(figsize=(min(16.0, 4.0 + len(set_names) * (0.3 * len(rms) + 0.6)), 4.6), dpi=110)
    colors = plt.get_cmap("tab10" if len(rms) <= 10 else "tab20").colors
    for j, rm in enumerate(rms):
        xs = [i + (j - (len(rms) - 1) / 2) * width for i in range(len(set_names))]
        accs = [table[rm][s]["accuracy"] for s in set_names]
        ax.bar(xs, accs, width * 0.92, yerr=[table[rm][s]["se"] for s in set_names], capsize=2.5, label=rm,
               color=colors[j % len(colors)])
    n = {s: table[rms[0]][s]["n"] for s in set_names}
    ax.set_xticks(range(len(set_names)), [f"{s}\n(n={n[s]})" for s in set_names], fontsize=8)
    ax.axhline(0.5, color="black", linestyle="--", linewidth=1.0, label="chance")
    ax.set_ylim(0, 1)
    ax.set_ylabel("pairwise accuracy  P[r(chosen) > r(rejected)]")
    ax.set_title("reward-model accuracy per evaluation set (error bars: binomial SE)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return save_figure(fig, path)


def markdown(table: dict, exports: dict[str, Path], sets: list[EvalSet], skipped: dict[str, str], limit: int | None) -> str:
    names = [s.name for s in sets if s.name not in skipped]
    lines = ["# Reward-model accuracy on preference evaluation sets", "",
             "Generated by `experiments/rm_accuracy/evaluate.py`. Cell: pairwise accuracy ± binomial SE (n pairs);",
             "accuracy = share of pairs with r(chosen) > r(rejected), chance = 0.5.", "",
             "| RM | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for rm, row in table.items():
        lines.append(f"| {rm} | " + " | ".join(f"{row[s]['accuracy']:.3f} ± {row[s]['se']:.3f} (n={row[s]['n']})" for s in names) + " |")
    lines += ["", "## Mean margin r(chosen) - r(rejected)", "",
              "Raw score units; in brackets divided by the std of the RM's scores on its training responses.", "",
              "| RM | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for rm, row in table.items():
        cells = [f"{row[s]['margin']:.3f}" + (f" [{row[s]['margin_sd']:.2f} sd]" if row[s]["margin_sd"] is not None else "") for s in names]
        lines.append(f"| {rm} | " + " | ".join(cells) + " |")
    lines += ["", "## Sets", ""]
    for s in sets:
        status = f"skipped: {skipped[s.name]}" if s.name in skipped else f"{next(iter(table.values()))[s.name]['n']} pairs"
        lines.append(f"- `{s.name}`: `{s.describe()}`" + (f", --limit {limit}" if limit else "") + f" ({status})")
    lines += ["", "## Reward models", ""]
    for rm, path in exports.items():
        limits = next(iter(table[rm].values()))["max_tokens"]
        lines.append(f"- {rm}: `{path}` (max prompt / response tokens {limits[0]} / {limits[1]})")
    return "\n".join(lines) + "\n"


def slug(text: str) -> str:
    """A W&B-key-safe form of an RM label (β -> beta, λ -> lambda)."""
    text = text.replace("β", "beta").replace("λ", "lambda")
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")


def log_to_wandb(png: Path, md: str, table: dict, names: list[str], out: Path) -> None:
    import wandb

    run = wandb.init(project="inform", job_type="analysis", group="rm-accuracy", mode="offline", dir=str(out),
                     name="rm-accuracy", config={"sets": names, "rms": list(table)})
    rows = [[rm, s, r["n"], r["accuracy"], r["se"], r["margin"]] for rm, row in table.items() for s, r in row.items()]
    run.log({"analysis/rm_accuracy": wandb.Image(str(png)), "analysis/rm_accuracy_md": md,
             "analysis/rm_accuracy_table": wandb.Table(columns=["rm", "set", "n", "accuracy", "se", "margin"], data=rows),
             **{f"acc/{slug(rm)}/{s}": r["accuracy"] for rm, row in table.items() for s, r in row.items()}})
    run.finish()
    # wandb 0.31 offline: finish() can return before the service has written the run record
    # to the .wandb file; teardown waits for the service, so the file is complete on return
    wandb.teardown()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("exports", type=Path, nargs="+", help="RM export folders, or folders holding <stage>-<hash>/ exports")
    ap.add_argument("--stages", default="rm", help="export name prefixes to collect from folders (e.g. rm,warm,gold)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=LOADER:PATH[:SUBSET[:SPLIT]]")
    ap.add_argument("--only", help="comma-separated set names to evaluate (default: all)")
    ap.add_argument("--limit", type=int, default=None, help="at most N pairs per set")
    ap.add_argument("--max-prompt-tokens", type=int, default=None)
    ap.add_argument("--max-response-tokens", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--no-wandb", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    sets = choose_sets(args.sets, args.only)
    exports = find_exports(args.exports, [s.strip() for s in args.stages.split(",") if s.strip()])
    loaded, skipped = load_sets(sets, args.limit)
    names = list(loaded)
    table, by_label = {}, {}
    for label, export in sorted(zip(labels(exports), exports)):
        log.info("scoring %s (%s)", label, export)
        table[label] = evaluate_export(export, loaded, max_prompt=args.max_prompt_tokens, max_response=args.max_response_tokens,
                                       batch_size=args.batch_size, device=args.device, dtype=args.dtype)
        by_label[label] = export
    args.out.mkdir(parents=True, exist_ok=True)
    png = plot(table, names, args.out / "rm_accuracy.png")
    md = markdown(table, by_label, sets, skipped, args.limit)
    (args.out / "results.md").write_text(md)
    if not args.no_wandb:
        log_to_wandb(png, md, table, names, args.out)
    print(md)
    return {"table": table, "skipped": skipped, "exports": by_label, "sets": names}


if __name__ == "__main__":
    main()
