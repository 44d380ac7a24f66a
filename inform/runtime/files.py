"""Small file operations every stage uses: folders that must be writable, atomic JSON."""
from __future__ import annotations

import json
import os
from pathlib import Path


def make_dir(path: Path, key: str) -> Path:
    """mkdir -p, with an error that names the config key and the path when it cannot."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        probe = Path(path) / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise OSError(f"{key}: cannot write to {path} ({err.strerror or err})") from None
    return Path(path)


def read_metrics(path: Path) -> dict:
    """An artifact's `metrics.json`, or {} when it has none."""
    f = Path(path) / "metrics.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically: a reader sees the old file or the whole new one, never half."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
