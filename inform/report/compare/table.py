"""A sweep's RL runs as one tidy table: a row per (run, eval step), and each run's curves.

Sources: the W&B offline runs (`inform.tracking.wandb_offline.find_runs`) or Lightning's CSV
logs (`inform.tracking.csv_metrics.read_csv_metrics`, wrapped in a `CsvRun` with the run's
config, which the CSV does not hold). Only RL runs (job type ppo or rloo) by default.
"""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inform.report.runs import RL_JOBS
from inform.tracking.csv_metrics import read_csv_metrics

KL = "eval/kl"
METRICS = ("eval/kl", "reward/proxy_eval", "reward/gold", "reward/true")  # the eval step's columns
DETECTOR_PREFIXES = ("csi/value", "detect/")  # detector metrics kept when a run logged them
STEP_KEYS = ("trainer/global_step", "step", "_step")  # W&B rows (Lightning's step, W&B's), CSV rows
DEFAULT_KL_COEF = 0.05  # conf/config.yaml's kl_coef


@dataclass
class CsvRun:
    """A run read from its CSV log, shaped like `OfflineRun` for `tidy`: the config comes from
    the caller (the CSV logger writes metrics only)."""
    name: str
    config: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    job_type: str = "ppo"
    group: str = ""
    run_id: str = ""


def csv_run(path: str | Path, config: dict[str, Any], job_type: str = "ppo", name: str | None = None) -> CsvRun:
    """The `metrics.csv` rows under `path` (all parts of a resumed stage, in order) as one run."""
    return CsvRun(name=name or str(path), config=config, history=read_csv_metrics(path), job_type=job_type)


def default_label(config: dict[str, Any]) -> str:
    """A method label from a run's config: the objective's name, IB's beta, the ensemble
    (members > 1: its combine rule and k) and the PPO KL coefficient, e.g.
    `ib beta=0.1, kl_coef 0.05` or `bt ensemble-uwo x4, kl_coef 0.05`."""
    objective = config.get("objective") or {}
    name = str(objective.get("name", "?"))
    if name == "ib" and config.get("beta") is not None:
        name += f" beta={config['beta']:g}"
    ens = config.get("ensemble") or {}
    if ens.get("members", 1) > 1:
        name += f" ensemble-{ens.get('combine', 'mean')} x{ens['members']}"
    kl_coef = config.get("kl_coef", (config.get("ppo") or {}).get("kl_coef"))
    return name if kl_coef is None else f"{name}, kl_coef {kl_coef:g}"


def default_seed(config: dict[str, Any]) -> Any:
    """The run's `seed` (same seed = same SFT policy, gold RM and labels: the pairing key)."""
    return config.get("seed")


def _is_metric(key: str) -> bool:
    return key in METRICS or key.startswith(DETECTOR_PREFIXES)


def _step(row: dict) -> Any:
    return next((row[k] for k in STEP_KEYS if row.get(k) is not None), None)


def eval_steps(history: Iterable[dict]) -> list[dict[str, float]]:
    """One row per eval step, sorted by step: the eval metrics (and detector metrics) logged at
    that step, merged over the history rows holding them; steps without `eval/kl` dropped."""
    by_step: dict[Any, dict] = defaultdict(dict)
    for row in history:
        metrics = {k: float(v) for k, v in row.items() if _is_metric(k) and v is not None}
        if metrics:
            by_step[_step(row)].update(metrics)
    return [{"step": s, **by_step[s]} for s in sorted(by_step, key=lambda s: (s is None, s)) if KL in by_step[s]]


def tidy(runs: Iterable, label: Callable[[dict], str] = default_label, seed: Callable[[dict], Any] = default_seed,
         jobs: tuple[str, ...] = RL_JOBS) -> list[dict[str, Any]]:
    """The tidy table of a sweep: a dict per (run, eval step) with `run` (run id, else name),
    `group`, `job_type`, `method` (= `label(config)`), `seed` (= `seed(config)`), `step`,
    `eval/kl`, `reward/proxy_eval`, `reward/gold`, `reward/true` and the detector metrics a
    run logged (`csi/value`, `detect/*`); a metric a run did not log is NaN. Runs whose job
    type is not in `jobs` are skipped, and so are runs without an eval step."""
    rows, head_keys = [], ("run", "group", "job_type", "method", "seed")
    for run in runs:
        if run.job_type not in jobs:
            continue
        head = {"run": run.run_id or run.name, "group": run.group, "job_type": run.job_type,
                "method": label(run.config), "seed": seed(run.config)}
        rows.extend({**head, **r} for r in eval_steps(run.history))
    keys = ["step", *METRICS, *sorted({k for r in rows for k in r if _is_metric(k) and k not in METRICS})]
    return [{**{k: r[k] for k in head_keys}, **{k: r.get(k, math.nan) for k in keys}} for r in rows]


@dataclass(frozen=True)
class Curve:
    """One run's eval curve: `kl` (t,) and `values[key]` (t,), in step order."""
    run: str
    method: str
    seed: Any
    step: np.ndarray
    kl: np.ndarray
    values: dict[str, np.ndarray]


def curves(table: list[dict[str, Any]]) -> dict[str, dict[Any, Curve]]:
    """The tidy table back as curves: method -> seed -> Curve. Two runs of one method with
    the same seed cannot be paired: an error names them (a label that separates them, or
    `find_runs(..., merge_resumed=True)` for a resumed run, fixes it)."""
    by_run: dict[str, list[dict]] = defaultdict(list)
    for row in table:
        by_run[row["run"]].append(row)
    out: dict[str, dict[Any, Curve]] = defaultdict(dict)
    for run, rows in by_run.items():
        rows = sorted(rows, key=lambda r: (r["step"] is None, r["step"] or 0))
        method, seed = rows[0]["method"], rows[0]["seed"]
        if seed in out[method]:
            raise ValueError(f"method {method!r}, seed {seed!r}: two runs ({out[method][seed].run}, {run}); "
                             "give `tidy` a label that tells them apart")
        keys = [k for k in rows[0] if _is_metric(k) and k != KL]
        out[method][seed] = Curve(run, method, seed, np.array([r["step"] for r in rows]),
                                  np.array([r[KL] for r in rows], dtype=float),
                                  {k: np.array([r[k] for r in rows], dtype=float) for k in keys})
    return dict(out)


def _cell(text: str, column: str) -> Any:
    if text == "":
        return None if column in ("seed", "step", "group", "run") else math.nan
    if column in ("run", "group", "job_type", "method"):
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if column in ("seed", "step") and number.is_integer() else number


def read_tidy(*paths: str | Path) -> list[dict[str, Any]]:
    """Tidy tables written by `write_csv` (e.g. one per chunk of seeds of a sweep), read back
    and concatenated: numbers as floats (seed and step as ints), empty cells as NaN (None in
    the head columns). Columns one file lacks (a detector another chunk logged) are NaN. A
    file without the tidy head columns is refused, naming it."""
    rows: list[dict[str, Any]] = []
    for path in map(Path, paths):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("run", "method", "seed", "step", KL) if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: not a tidy table (no column {', '.join(missing)})")
            rows.extend({k: _cell(v, k) for k, v in r.items()} for r in reader)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, math.nan) for k in keys} for r in rows]


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Rows as a CSV (columns in first-seen order; NaN and None as empty cells, as `read_tidy`
    and `read_csv_metrics` read them back), written atomically."""
    path = Path(path)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v for k, v in r.items()})
    tmp.replace(path)  # atomic: a killed analysis leaves the old file, never half a new one
    return path
