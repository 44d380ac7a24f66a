"""Reading RL runs back for the analysis scripts in experiments/: eval rows, the early-stop
rule replayed, and logging the figures and tables to W&B. The numbers (gold at a KL, means
and intervals over seeds) are `inform.report.compare`'s.

The runs are the W&B offline folders (`inform.tracking.wandb_offline.find_runs`); the CSV
logger's files hold the same metrics (`inform.tracking.csv_metrics`).
"""
from __future__ import annotations

from pathlib import Path

from inform.detect.early_stop import ChangeRateStop

RL_JOBS = ("ppo", "rloo")


def eval_rows(run) -> list[dict]:
    """One dict per eval step (the records holding `reward/gold`), sorted by step."""
    rows = {}
    for row in run.history:
        if "reward/gold" in row:
            step = row.get("trainer/global_step", row.get("_step"))
            rows[step] = {"step": step, **row}
    return [rows[s] for s in sorted(rows)]


def fire_step(series: list[float], steps: list[int], e_max: float = 10.0) -> int | None:
    """The step where the change-rate rule (InfoRM appendix G) fires on `series`, or None."""
    stop = ChangeRateStop(e_max)
    for v in series:
        stop.update(v)
    return None if stop.fired_at is None else steps[stop.fired_at]


def log_analysis(images: dict[str, Path], out: Path, name: str, table_md: Path | None = None,
                 tables: dict[str, list[dict]] | None = None) -> None:
    """The figures, the markdown table and `tables` (name -> rows, each a `wandb.Table` with the
    rows' keys as columns) as one W&B offline run of job type `analysis`."""
    import wandb

    out.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project="inform", job_type="analysis", group=name, mode="offline", dir=str(out), name=name)
    payload = {k: wandb.Image(str(p)) for k, p in images.items()}
    if table_md is not None:
        payload["analysis/results_md"] = wandb.Html(f"<pre>{table_md.read_text()}</pre>")
    for key, rows in (tables or {}).items():
        columns = list(dict.fromkeys(c for r in rows for c in r))
        payload[key] = wandb.Table(columns=columns, data=[[_plain(r.get(c)) for c in columns] for r in rows])
    run.log(payload)
    run.finish()
    wandb.teardown()  # wandb 0.31 offline: finish() can return before the run record is on disk


def _plain(value):
    """A table cell W&B can hold: lists as text, numpy numbers as Python numbers."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return value.item() if hasattr(value, "item") else value
