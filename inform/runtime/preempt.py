"""Preemption and requeue on Slurm: the one place in inform's library that reads SLURM_*.

How a preempted or time-limited job keeps its work:
1. The signal. The sbatch scripts ask for `--signal=B:USR1@<s>` (the batch shell traps it
   and forwards it to Python; with several processes, through srun and slurm/node.sh, to
   each rank, as torchrun passes on no USR1);
   Hydra's submitit launcher sends USR2 (`signal_delay_s`). A user or admin can send it by
   hand: `scancel --signal=USR1 --batch <job>`.
2. The handler (installed when the run starts, `run.py`) only records the request (no work
   inside a signal handler). Between stages the job requeues at once; several ranks follow
   rank 0 there (inform/runtime/ranks.py).
3. At the end of the step that is running (`on_train_batch_end`, where Lightning expects
   a mid-epoch checkpoint) the `PreemptCheckpoint` callback writes
   `checkpoints/preempt.ckpt` atomically: weights, optimizer(s), LR schedulers, Lightning's
   loop counters, the module's own state (PPO: iteration, KL controller, eval history; CSI:
   its reference and series), the RNG states and the data position. At the start of the
   next step (after Lightning has written that step's logs, and run a validation due then)
   the job requeues itself and exits: `scontrol requeue`, called by the sbatch scripts once
   Python has exited (`INFORM_REQUEUE_FILE`, so that no process is still running when Slurm
   stops the job), else by Python itself, or submitit's own handler under its launcher.
   With several ranks, all stop after the same step (they agree through a reduce of the flag
   each step), the checkpoint holds every rank's RNG states, and only rank 0 requeues.
4. The requeued job has the same job (and array task) id, so the same run folder; completed
   stages come from the artifact cache, and the interrupted stage calls
   `trainer.fit(ckpt_path=preempt.ckpt)`, logs to the same W&B run id and appends to the
   same CSV. No step is lost or done twice.
"""
from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import lightning as L
import numpy as np
import torch

from inform.runtime import ranks

log = logging.getLogger("inform")
SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


def job_id() -> str | None:
    """The id `scontrol requeue` takes: `<array job>_<task>` for array tasks, else the job id."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def restart_count() -> int:
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def under_slurm() -> bool:
    return job_id() is not None


class Preemption:
    """Records USR1/USR2; `requeue_and_exit` hands the job back to Slurm."""

    def __init__(self):
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            current = signal.getsignal(sig)
            if current != self._handle:
                self._previous[sig] = current
                signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested, self.signum = True, signum

    def requeue_and_exit(self) -> None:
        if ranks.rank() > 0:  # several processes (torchrun): rank 0 requeues the job, once
            log.info("preempt: rank %d stops; rank 0 requeues the job", ranks.rank())
            raise SystemExit(0)
        previous = self._previous.get(self.signum)
        if callable(previous):  # submitit's handler: it pickles the resubmission, requeues and exits
            log.info("preempt: checkpoint saved; handing over to the launcher's handler")
            previous(self.signum, None)
        job, handoff = job_id(), os.environ.get("INFORM_REQUEUE_FILE")
        if job and handoff:  # the sbatch scripts requeue once every process of the run has exited
            try:
                Path(handoff).write_text(job)
                log.info("preempt: checkpoint saved; the batch script requeues job %s", job)
                raise SystemExit(0)
            except OSError as err:
                log.warning("preempt: cannot write %s (%s): requeueing from here", handoff, err)
        if job:
            result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            log.info("preempt: checkpoint saved; scontrol requeue %s -> %s %s", job, result.returncode, result.stderr.strip())
        raise SystemExit(0)


PREEMPTION = Preemption()


def rng_state() -> dict:
    """Every RNG's state as tensors and plain numbers (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class PreemptCheckpoint(L.Callback):
    """After a preemption signal: saves `path` at the end of the running step, requeues at the
    start of the next one.

    Its own state (saved in every checkpoint) is the data position (epoch, batches done in
    it) and the RNG states; on resume it puts the samplers back at that position.
    """

    def __init__(self, path: str | Path, samplers: list | None = None, fingerprint: str = ""):
        self.path = Path(path)
        self.samplers = samplers or []
        self.fingerprint = fingerprint  # the stage's cache hash: a checkpoint of another config is refused
        self._trainer: L.Trainer | None = None
        self._saved = False

    def setup(self, trainer, pl_module, stage):
        self._trainer = trainer
        for sampler in self.samplers:  # the distributed sampler too (make_trainer turns Lightning's off)
            sampler.set_replicas(trainer.world_size, trainer.global_rank)
        PREEMPTION.install()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # several ranks: one all-reduce of a flag per step, so that all stop after the same step
        # even when the signal reached them between two different steps (one rank: no-op)
        if trainer.strategy.reduce_boolean_decision(PREEMPTION.requested, all=False) and not self._saved:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            if trainer.is_global_zero:  # a killed save's leftover folder (DeepSpeed); a file is overwritten
                shutil.rmtree(tmp, ignore_errors=True)
            trainer.strategy.barrier()
            trainer.save_checkpoint(tmp, weights_only=False)  # every rank (DeepSpeed: its shard); ends in a barrier
            if trainer.is_global_zero:
                replace(tmp, self.path)
            trainer.strategy.barrier()
            self._saved = True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._saved:
            PREEMPTION.requeue_and_exit()

    def state_dict(self) -> dict:
        """Called on every rank when a checkpoint is saved (only rank 0's is written under DDP):
        so every rank's RNG states are gathered here, and each rank resumes with its own."""
        t = self._trainer
        done = t.fit_loop.epoch_loop.batch_progress.current.processed if t is not None else 0
        state = {"epoch": t.current_epoch if t is not None else 0, "batches_done": done, "rng": rng_state(), "fingerprint": self.fingerprint}
        if t is not None and t.world_size > 1:
            state["rng_of_rank"] = [None] * t.world_size
            torch.distributed.all_gather_object(state["rng_of_rank"], state["rng"])
        return state

    def load_state_dict(self, state: dict) -> None:
        for sampler in self.samplers:
            sampler.resume_at(state["epoch"], state["batches_done"])
        own = state.get("rng_of_rank") or [state["rng"]]
        set_rng_state(own[ranks.rank()] if ranks.rank() < len(own) else state["rng"])


def replace(tmp: Path, path: Path) -> None:
    """os.replace for a checkpoint file or a DeepSpeed checkpoint folder (which os.replace
    cannot put over an existing folder: the old one is moved aside first, then deleted)."""
    if tmp.is_dir() and path.exists():
        old = path.with_name(path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def client_state_file(path: Path) -> Path:
    """The file holding Lightning's state: the checkpoint itself, or in a DeepSpeed checkpoint
    folder the model-states file, where DeepSpeed keeps Lightning's `client_state`."""
    if not path.is_dir():
        return path
    found = sorted(path.glob("*/*model_states.pt"))
    if not found:
        raise RuntimeError(f"{path}: a DeepSpeed checkpoint folder without a model-states file (an interrupted save?); "
                           "delete it to restart this stage from its beginning")
    return found[0]


def check_resume_checkpoint(path: Path, fingerprint: str) -> None:
    """Refuse, with the path in the message, a checkpoint that cannot be read or that another
    configuration of the stage wrote (it would load wrong weights or fail deep in Lightning)."""
    try:
        ckpt = torch.load(client_state_file(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise RuntimeError(f"{path}: the checkpoint cannot be read, it may be truncated ({type(err).__name__}: {err}); "
                           "delete it to restart this stage from its beginning") from err
    saved = next((v.get("fingerprint") for k, v in ckpt.get("callbacks", {}).items() if k.startswith("PreemptCheckpoint")), None)
    if saved != fingerprint:
        raise RuntimeError(f"{path}: written by another configuration of this stage (stage hash {saved} != {fingerprint}); "
                           "delete it, or run in a new folder")
