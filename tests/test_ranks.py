"""Several processes per run (torchrun, 2 CPU processes, gloo): rank 0 builds each artifact and
the other rank joins its training (inform/pipeline/ranks.py)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from inform.tracking.wandb_offline import find_runs
from tests.conftest import ROOT

# BT on the data set's own pairs from a random init: no upstream stage, so nothing but this
# stage's training differs between the runs compared
RM = ["experiment=smoke", "stage=rm", "rm.data=human", "rm.init=base", "objective=bt", "rm.epochs=1",
      "data.preference.n=3000", "trainer.precision=32-true", "logger=csv"]
ON_CPU = ["trainer.accelerator=cpu", "trainer.devices=2"]


def torchrun(*overrides: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(ROOT / "run.py"), *overrides]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def single(*overrides: str, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-5000:]


def only_artifact(art: Path, stage: str) -> Path:
    (path,) = [p for p in art.iterdir() if p.name.startswith(f"{stage}-") and p.is_dir()]
    return path


def test_two_ranks_train_the_rm_a_single_process_trains_with_the_double_batch(tmp_path):
    """Rank r takes every other example of the epoch's order, so 2 ranks x 32 pairs see the
    64 pairs a single process sees per step; DDP averages their gradients (and so does
    DeepSpeed's ZeRO-3, with one shard per rank): the same reward model, to float noise."""
    single(*RM, f"paths.artifacts={tmp_path}/one", f"hydra.run.dir={tmp_path}/one-run", cwd=tmp_path)
    torchrun(*RM, "trainer=ddp", *ON_CPU, "rm.batch_size=32", f"paths.artifacts={tmp_path}/ddp",
             f"hydra.run.dir={tmp_path}/ddp-run", cwd=tmp_path)
    torchrun(*RM, "trainer=deepspeed_zero3", *ON_CPU, "trainer.strategy._target_=tests.helpers.cpu_deepspeed.CPUDeepSpeedStrategy",
             "rm.batch_size=32", f"paths.artifacts={tmp_path}/zero3", f"hydra.run.dir={tmp_path}/zero3-run", cwd=tmp_path)
    one = only_artifact(tmp_path / "one", "rm")
    m1 = json.loads((one / "metrics.json").read_text())
    head1 = load_file(one / "head.safetensors")
    for name in ("ddp", "zero3"):
        art = tmp_path / name
        assert sorted(p.name for p in art.iterdir() if not p.name.endswith(".lock")) == [only_artifact(art, "rm").name], name
        m = json.loads((only_artifact(art, "rm") / "metrics.json").read_text())
        assert m["val/acc"] == m1["val/acc"] and m["val/loss"] == pytest.approx(m1["val/loss"], rel=1e-5), name
        head = load_file(only_artifact(art, "rm") / "head.safetensors")
        assert all(torch.allclose(head[k], v, atol=1e-4) for k, v in head1.items()), name
        steps = [line.split(",") for line in (tmp_path / f"{name}-run" / "rm" / "csv" / "part0" / "metrics.csv").read_text().splitlines()]
        assert len(list((tmp_path / f"{name}-run" / "rm" / "csv").iterdir())) == 1  # rank 0 logs, alone
        assert max(int(r[steps[0].index("step")]) for r in steps[1:]) == max(
            int(r[steps[0].index("step")]) for r in [line.split(",") for line in
             (tmp_path / "one-run" / "rm" / "csv" / "part0" / "metrics.csv").read_text().splitlines()][1:])
    shards = sorted(p.name for p in (tmp_path / "zero3-run" / "rm" / "checkpoints" / "last.ckpt" / "checkpoint").iterdir())
    assert [s for s in shards if s.endswith("model_states.pt")] == [
        "zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"]


def test_the_pipeline_runs_on_two_ranks_each_artifact_built_once_and_logged_once(tmp_path):
    proc = torchrun("experiment=smoke", "trainer=ddp", *ON_CPU, "trainer.precision=32-true", "sft.max_steps=30",
                    "ppo.steps=4", "ppo.eval_every=2", f"paths.artifacts={tmp_path}/art", f"hydra.run.dir={tmp_path}/run",
                    cwd=tmp_path)
    log = proc.stdout + proc.stderr
    stages = ("sft", "gold", "label", "rm", "sft_stats", "ppo")
    for stage in stages:
        assert log.count(f" - {stage}: built ") == 1 and log.count(f" - {stage}: rank 1 uses ") == 1, stage
    left = sorted(p.name for p in (tmp_path / "art").iterdir() if not p.name.endswith(".lock"))
    assert [n.rsplit("-", 1)[0] for n in left] == sorted(stages)  # no scratch folder, no marker left behind
    runs = find_runs(tmp_path / "run")
    assert sorted(r.job_type for r in runs) == ["gold", "ppo", "rm", "sft"]  # one W&B run per stage: rank 0's
    history = json.loads((only_artifact(tmp_path / "art", "ppo") / "eval_history.json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 2, 4] and all("reward/gold" in h for h in history)


def test_ppo_under_ddp_keeps_the_ranks_policies_equal_though_they_sample_different_prompts(tmp_path):
    """Policy and critic in one optimizer under DDP: each rank rolls out its own prompt batches
    and backpropagates several minibatches per step; the gradients are averaged, so both ranks
    end with the same policy, moved off the SFT one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                           str(ROOT / "tests" / "helpers" / "ppo_ddp.py"), str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-5000:]
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert r0["iterations"] == r1["iterations"] == 2
    assert all(torch.equal(v, r1["policy"][k]) for k, v in r0["policy"].items())
    assert max((v - r0["sft"][k]).abs().max().item() for k, v in r0["policy"].items()) > 1e-3
