"""`make bench`: every CPU benchmark, each a ratio against a bare baseline in the same run.

Results print and go to benchmarks/out/results.json; benchmarks/RESULTS.md records them.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from benchmarks import csi_cost, detectors_cost, pipeline_cost, ppo_step, rm_step

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}",
        "rm_step": rm_step.main(),
        "ppo_step": ppo_step.main(),
        "csi_cost": csi_cost.main(),
        "detectors_cost": detectors_cost.main(),
        "pipeline_cost": pipeline_cost.main(),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
