"""The tiny default pipeline end to end, from an empty cache: wall time and peak memory.

Runs `python run.py objective=bt` in a fresh folder (a subprocess, as a user would) and
reads the child's peak resident memory from the OS. Not a ratio: a figure to watch.

    python -m benchmarks.pipeline_cost
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(*overrides: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "run.py"), "objective=bt", "logger=csv", *overrides], cwd=tmp, check=True,
                       capture_output=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
        wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    print(f"tiny pipeline (sft, gold, label, rm, ppo + eval and CSI), empty cache: {wall:.0f} s wall, peak RSS {peak_mb:.0f} MiB")
    return {"wall_s": wall, "peak_rss_mib": peak_mb}


if __name__ == "__main__":
    main(*sys.argv[1:])
