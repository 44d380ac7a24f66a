"""Read Lightning's CSVLogger output (`metrics.csv`) back: one dict per logged row."""
from __future__ import annotations

import csv
from pathlib import Path


def read_csv_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a `metrics.csv`, or of all those under a folder in order (a stage writes one per
    attempt: `csv/part0/`, `csv/part1/` after a preemption), empty cells dropped, numbers as floats."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("metrics.csv"), key=lambda p: (len(str(p)), str(p)))
    rows = []
    for file in files:
        with open(file, newline="") as f:
            for row in csv.DictReader(f):
                rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


def series(rows: list[dict[str, float]], key: str, step_key: str = "step") -> list[tuple[int, float]]:
    """(step, value) of every row holding `key`."""
    return [(int(r[step_key]), r[key]) for r in rows if key in r]
