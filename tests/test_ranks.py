"""Several processes per run (torchrun, 2 CPU processes, gloo): rank 0 builds each artifact and
the other rank joins its training (inform/runtime/ranks.py)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from types import SimpleNamespace
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


TORCHRUN_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def torchrun_cmd(script: Path, *args: str) -> list[str]:
    """`torchrun --nproc_per_node=2 script args`, on a free port for the rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", str(script), *args]


def torchrun(*overrides: str, cwd: Path, timeout: int = 600, check: bool = True, late_rank: bool = False) -> subprocess.CompletedProcess:
    """torchrun run.py; late_rank: rank 1 starts 1.5 s after rank 0 (tests/helpers/late_rank.sh)."""
    cmd = torchrun_cmd(ROOT / "run.py", *overrides)
    if late_rank:
        at = cmd.index(str(ROOT / "run.py"))
        cmd[at:at] = ["--no-python", "bash", str(ROOT / "tests" / "helpers" / "late_rank.sh"), sys.executable]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=TORCHRUN_ENV)
    assert proc.returncode == 0 or not check, proc.stdout[-3000:] + proc.stderr[-5000:]
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
        # not the bias: the BT loss depends on r_w - r_l only, so its gradient is float noise, which
        # AdamW's normalization turns into steps of up to lr each way (1.2e-4 apart with 2026-12-07's packages)
        assert torch.allclose(head["linear.weight"], head1["linear.weight"], atol=1e-4), name
        steps = [line.split(",") for line in (tmp_path / f"{name}-run" / "rm" / "csv" / "part0" / "metrics.csv").read_text().splitlines()]
        assert len(list((tmp_path / f"{name}-run" / "rm" / "csv").iterdir())) == 1  # rank 0 logs, alone
        assert max(int(r[steps[0].index("step")]) for r in steps[1:]) == max(
            int(r[steps[0].index("step")]) for r in [line.split(",") for line in
             (tmp_path / "one-run" / "rm" / "csv" / "part0" / "metrics.csv").read_text().splitlines()][1:])
    shards = sorted(p.name for p in (tmp_path / "zero3-run" / "rm" / "checkpoints" / "last.ckpt" / "checkpoint").iterdir())
    assert [s for s in shards if s.endswith("model_states.pt")] == [
        "zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"]


def test_the_pipeline_runs_on_two_ranks_each_artifact_built_once_and_logged_once(tmp_path):
    """No hydra.run.dir, and rank 1 starts 1.5 s late: both ranks still name one run folder
    (Hydra's `now` would give them two: inform/config/run_start.py)."""
    proc = torchrun("experiment=smoke", "trainer=ddp", *ON_CPU, "trainer.precision=32-true", "sft.max_steps=30",
                    "ppo.steps=4", "ppo.eval_every=2", f"paths.artifacts={tmp_path}/art", cwd=tmp_path, late_rank=True)
    log = proc.stdout + proc.stderr
    stages = ("sft", "gold", "label", "rm", "sft_stats", "sft_train_stats", "ppo")
    for stage in stages:
        assert log.count(f" - {stage}: built ") == 1 and log.count(f" - {stage}: rank 1 uses ") == 1, stage
    left = sorted(p.name for p in (tmp_path / "art").iterdir() if not p.name.endswith(".lock"))
    assert [n.rsplit("-", 1)[0] for n in left] == sorted(stages)  # no scratch folder, no marker left behind
    (run,) = (tmp_path / "outputs").glob("*/*")  # one run folder for both ranks
    assert (run / ".hydra").is_dir() and (run / "sft").is_dir()
    runs = find_runs(run)
    assert sorted(r.job_type for r in runs) == ["gold", "ppo", "rm", "sft"]  # one W&B run per stage: rank 0's
    history = json.loads((only_artifact(tmp_path / "art", "ppo") / "eval_history.json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 2, 4] and all("reward/gold" in h for h in history)


def test_ppo_under_ddp_keeps_the_ranks_policies_equal_though_they_sample_different_prompts(tmp_path):
    """Policy and critic in one optimizer under DDP: each rank rolls out its own prompt batches
    and backpropagates several minibatches per step; the gradients are averaged, so both ranks
    end with the same policy, moved off the SFT one."""
    proc = subprocess.run(torchrun_cmd(ROOT / "tests" / "helpers" / "ppo_ddp.py", str(tmp_path)), cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=TORCHRUN_ENV)
    assert proc.returncode == 0, proc.stderr[-5000:]
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert r0["iterations"] == r1["iterations"] == 2
    assert all(torch.equal(v, r1["policy"][k]) for k, v in r0["policy"].items())
    assert max((v - r0["sft"][k]).abs().max().item() for k, v in r0["policy"].items()) > 1e-3


def test_the_run_folders_time_is_torchruns_start_in_every_rank_and_now_elsewhere():
    """Ranks are children of one torchrun agent (here: this process) and start at different
    times; each names the run folder by the agent's start, where Hydra's `now` would differ."""
    from inform.config.run_start import process_start_time

    def started_child(**env: str) -> str:
        time.sleep(1.1)  # a second ticks between two children
        code = "from inform.config.run_start import run_start; print(run_start('%Y-%m-%d/%H-%M-%S.%f'))"
        base = {k: v for k, v in os.environ.items() if k != "TORCHELASTIC_RUN_ID"}
        return subprocess.run([sys.executable, "-c", code], env={**base, "PYTHONPATH": str(ROOT), **env}, capture_output=True,
                              text=True, check=True).stdout.strip()

    before = time.time()
    child = subprocess.Popen(["sleep", "5"])
    try:  # the /proc field read is the start time: within /proc/stat's whole-second boot time
        assert abs(process_start_time(child.pid) - before) < 1.5
    finally:
        child.kill()
    agent = datetime.fromtimestamp(process_start_time(os.getpid())).strftime("%Y-%m-%d/%H-%M-%S.%f")
    assert started_child(TORCHELASTIC_RUN_ID="r") == started_child(TORCHELASTIC_RUN_ID="r") == agent
    alone = [started_child(), started_child()]
    assert alone[0] != alone[1] and alone[0][:19] != agent[:19]


@pytest.fixture
def two_ranks(monkeypatch):
    """This process as one rank of a 2-process run (no process group: the stage cache's ranks
    agree through files), outside Slurm, with no preemption signal yet."""
    from inform.runtime import cache, ranks
    from inform.runtime.preempt import PREEMPTION

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(ranks, "_token", "run1")
    monkeypatch.setattr(PREEMPTION, "requested", False)
    monkeypatch.setattr(cache, "LOCK_POLL_S", 0.1)
    polls = []

    def sleep(seconds):  # a rank that would wait forever fails the test instead
        polls.append(seconds)
        assert len(polls) < 100, "a rank > 0 kept waiting for rank 0"
        time.sleep(0.01)

    monkeypatch.setattr(cache, "time", SimpleNamespace(sleep=sleep, time=time.time))

    def as_rank(r: int, signalled: bool) -> None:
        monkeypatch.setenv("RANK", str(r))
        monkeypatch.setattr(PREEMPTION, "requested", signalled)

    return cache, as_rank


def test_between_stages_rank_0_decides_to_stop_and_the_other_ranks_follow(two_ranks, tmp_path):
    """A signal between stages: rank 0 leaves a stop marker and exits; another rank stops on
    that marker even when its own signal has not come, and never stops on its own while rank 0
    builds (rank 0's Trainer would wait for it forever): it joins that build."""
    cache, as_rank = two_ranks
    built = []
    never = lambda out: built.append(out)  # noqa: E731
    as_rank(1, signalled=True)  # rank 1 got the signal, but rank 0 is building (its go marker): rank 1 joins
    final = cache.artifact_path(tmp_path, "sft", {"a": 1})
    final.parent.mkdir(exist_ok=True)
    cache.ranks.go_marker(final).write_text("")

    def rank0_finishes(scratch):  # the joined build; then rank 0's export completes
        built.append(scratch)
        final.mkdir()
        (final / cache.COMPLETE).write_text("")

    assert cache.build_once(tmp_path, "sft", {"a": 1}, rank0_finishes) == final and len(built) == 1
    assert built[0].name.startswith(".sft-") and ".rank1-" in built[0].name and not built[0].exists()

    as_rank(0, signalled=True)  # the next stage: rank 0 stops instead of building, and says so
    with pytest.raises(SystemExit) as stop:
        cache.build_once(tmp_path, "rm", {"b": 2}, never)
    assert stop.value.code == 0 and cache.ranks.stop_marker(tmp_path).is_file() and len(built) == 1
    assert not list(tmp_path.glob(".rm-*.go-*")) and not list(tmp_path.glob(".rm-*.tmp-*"))
    as_rank(1, signalled=False)  # rank 1's own signal has not come: it stops on rank 0's marker
    with pytest.raises(SystemExit) as stop:
        cache.build_once(tmp_path, "rm", {"b": 2}, never)
    assert stop.value.code == 0 and len(built) == 1
    done = cache.artifact_path(tmp_path, "label", {"c": 3})  # also where another job has just completed the artifact
    done.mkdir()
    (done / cache.COMPLETE).write_text("")
    with pytest.raises(SystemExit):
        cache.build_once(tmp_path, "label", {"c": 3}, never)


def test_a_rank_that_comes_after_rank_0_finished_a_short_stage_says_it_uses_it_once(two_ranks, tmp_path, caplog):
    """A stage without a Trainer (labels) can be complete before rank 1 asks for it (CI saw
    it): rank 1 still says it uses rank 0's artifact, once, as when it waited for it."""
    cache, as_rank = two_ranks
    as_rank(1, signalled=False)
    done = cache.artifact_path(tmp_path, "label", {"c": 3})
    done.mkdir()
    (done / cache.COMPLETE).write_text("")
    with caplog.at_level("INFO", logger=cache.log.name):
        for _ in range(2):  # asked again by a later stage (ensure_labels from rm and from ppo)
            assert cache.build_once(tmp_path, "label", {"c": 3}, lambda out: None, trains=False) == done
    said = [r.getMessage() for r in caplog.records]
    assert [m for m in said if m.startswith("label:")] == [f"label: rank 1 uses {done}"]


def test_a_job_waiting_for_another_jobs_build_leaves_when_preempted(two_ranks, tmp_path):
    """Another job holds the artifact's lock (it builds the same stage, maybe for hours): this
    run's rank 0 waits, and on a preemption signal it stops waiting and tells its other ranks."""
    from filelock import FileLock

    cache, as_rank = two_ranks
    final = cache.artifact_path(tmp_path, "gold", {"c": 3})
    as_rank(0, signalled=False)
    with FileLock(str(final) + ".lock"):  # the other job's build
        threading.Timer(0.3, lambda: setattr(cache.PREEMPTION, "requested", True)).start()
        t0 = time.monotonic()
        with pytest.raises(SystemExit):
            cache.build_once(tmp_path, "gold", {"c": 3}, lambda out: None)
        assert 0.3 <= time.monotonic() - t0 < 5
    assert cache.ranks.stop_marker(tmp_path).is_file() and not final.exists()


def test_a_signal_to_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    """Preemption inside a Trainer: USR1 reaches rank 1 alone (signals reach ranks at different
    steps); the ranks agree each step whether any of them got one, so both save the checkpoint
    after the same step and exit 0, instead of rank 1 waiting alone in the save's collective."""
    run = tmp_path / "run"
    cmd = torchrun_cmd(ROOT / "run.py", *RM, "data.preference.n=6000", "trainer=ddp", *ON_CPU, "rm.batch_size=16",
                       f"paths.artifacts={tmp_path}/art", f"hydra.run.dir={run}")
    log = tmp_path / "log.txt"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, env=TORCHRUN_ENV)
        csv = run / "rm" / "csv" / "part0" / "metrics.csv"
        deadline = time.time() + 300
        while not (csv.is_file() and len(csv.read_text().splitlines()) > 3):
            assert time.time() < deadline and proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        rank = {int(dict(kv.split("=", 1) for kv in Path(f"/proc/{c}/environ").read_bytes().decode().split("\0") if "=" in kv)["RANK"]): int(c)
                for c in children}
        os.kill(rank[1], signal.SIGUSR1)
        try:
            assert proc.wait(timeout=120) == 0, log.read_text()[-5000:]
        finally:
            proc.terminate()  # on TERM torchrun stops its workers (not on KILL)
            proc.wait(timeout=60)
    text = log.read_text()
    assert text.count("preempt: rank 1 stops") == 1 and "rm: built" not in text
    ckpt = torch.load(run / "rm" / "checkpoints" / "preempt.ckpt", weights_only=False)
    assert 30 <= ckpt["global_step"] < 170  # mid-epoch (~180 steps), after the rows seen before the signal
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("PreemptCheckpoint")]
    assert len(state["rng_of_rank"]) == 2  # each rank resumes with its own RNG states
    assert torch.equal(state["rng_of_rank"][0]["torch"], state["rng"]["torch"])
    assert not [p for p in (tmp_path / "art").glob("rm-*") if p.is_dir()]  # nothing exported: the stage resumes next time


@pytest.mark.parametrize("mode", ["skip", "stop"])
def test_a_nan_loss_on_one_rank_is_skipped_or_stops_on_every_rank(tmp_path, mode):
    """Rank 1 alone gets NaN losses (steps 5-7): the ranks agree on it each step, so with `skip`
    both drop the same three batches and training goes on (one rank skipping alone would
    leave the other waiting in the gradients' all-reduce), with `stop` both stop and the last
    good weights are saved."""
    nan = ["objective.loss._target_=tests.helpers.faults.nan_loss_after", "+objective.loss.after=5", "+objective.loss.rank=1"]
    args = [*RM, "data.preference.n=1500", "trainer=ddp", *ON_CPU, "rm.batch_size=16", *nan, f"on_nonfinite={mode}",
            f"paths.artifacts={tmp_path}/art", f"hydra.run.dir={tmp_path}/run"]
    if mode == "skip":
        proc = torchrun(*args, cwd=tmp_path)
        metrics = json.loads((only_artifact(tmp_path / "art", "rm") / "metrics.json").read_text())
        assert metrics["train/skipped_nonfinite"] == 3 and metrics["val/acc"] > 0.55
        out = proc.stdout + proc.stderr
        assert out.count("train/loss is nan at step") == 3 and out.count("another rank is non-finite at step") == 3
        return
    proc = torchrun(*args, cwd=tmp_path, timeout=300, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "train/loss is nan at step 5: stopped" in out and "another rank is non-finite at step 5: stopped" in out
    ckpt = torch.load(tmp_path / "run" / "rm" / "checkpoints" / "last_good.ckpt", weights_only=True)
    assert ckpt["global_step"] == 5 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


@pytest.mark.parametrize("nodes, nproc, launch", [
    ("1", "1", ["PY"]),
    ("1", "4", ["srun", "--ntasks=1", "--ntasks-per-node=1", "--cpus-per-task=8", "--kill-on-bad-exit=1", "bash", "ROOT/slurm/node.sh"]),
    ("3", "1", ["srun", "--ntasks=3", "--ntasks-per-node=1", "--cpus-per-task=8", "--kill-on-bad-exit=1", "--gpus-per-task=4", "bash",
                "ROOT/slurm/node.sh"]),
])
def test_slurm_jobs_of_several_processes_or_nodes_start_one_node_sh_per_node_through_srun(nodes, nproc, launch):
    """slurm/common.sh's LAUNCH: one process runs Python itself; several processes or several
    nodes run srun, one task per node, each starting node.sh (its torchrun). The one-node srun
    path runs for real in tests/test_slurm.py; several nodes are only composed here."""
    env = {**os.environ, "SLURM_JOB_NUM_NODES": nodes, "INFORM_NPROC": nproc, "SLURM_CPUS_PER_TASK": "8", "INFORM_ROOT": str(ROOT),
           "INFORM_PYTHON": sys.executable, "INFORM_SRUN_ARGS": "--gpus-per-task=4" if nodes == "3" else ""}
    out = subprocess.run(["bash", "-c", 'source slurm/common.sh && printf "%s\\n" "${LAUNCH[@]}"'], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split("\n")[:-1]
    assert out == [a.replace("PY", sys.executable).replace("ROOT", str(ROOT)) for a in launch]
