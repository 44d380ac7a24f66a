"""Reading RL runs back for the analysis scripts in experiments/: eval rows, the early-stop
rule replayed, gold at a given KL, table formatting, and logging the figures to W&B.

The runs are the W&B offline folders (`inform.tracking.wandb_offline.find_runs`); the CSV
logger's files hold the same metrics (`inform.tracking.csv_metrics`).
"""
from __future__ import annotations

import statistics
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


def gold_at_kl(rows: list[dict], kl: float) -> float | None:
    """Gold at a given KL, linear between the eval points (the first crossing); None if never reached."""
    pts = [(x["eval/kl"], x["reward/gold"]) for x in rows]
    for (k0, g0), (k1, g1) in zip(pts, pts[1:]):
        if k0 <= kl <= k1 and k1 > k0:
            return g0 + (g1 - g0) * (kl - k0) / (k1 - k0)
    return None


def fmt(vals: list[float], digits: int = 2) -> str:
    """'n/a', one value, or 'mean ± sd'."""
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.pstdev(vals):.{digits}f}"


def log_analysis(images: dict[str, Path], out: Path, name: str, table_md: Path | None = None) -> None:
    """The figures (and the markdown table) as one W&B offline run of job type `analysis`."""
    import wandb

    out.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project="inform", job_type="analysis", group=name, mode="offline", dir=str(out), name=name)
    payload = {k: wandb.Image(str(p)) for k, p in images.items()}
    if table_md is not None:
        payload["analysis/results_md"] = wandb.Html(f"<pre>{table_md.read_text()}</pre>")
    run.log(payload)
    run.finish()
    wandb.teardown()  # wandb 0.31 offline: finish() can return before the run record is on disk
