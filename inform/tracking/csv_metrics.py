"""Read Lightning's CSVLogger output (`metrics.csv`) back: one dict per logged row."""
from __future__ import annotations

import csv
from pathlib import Path


def read_csv_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of `metrics.csv` (or of the one under a folder), empty cells dropped, numbers as floats."""
    path = Path(path)
    if path.is_dir():
        path = next(path.rglob("metrics.csv"))
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


def series(rows: list[dict[str, float]], key: str, step_key: str = "step") -> list[tuple[int, float]]:
    """(step, value) of every row holding `key`."""
    return [(int(r[step_key]), r[key]) for r in rows if key in r]
