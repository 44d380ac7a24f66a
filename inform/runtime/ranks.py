"""Several processes per run (torchrun): rank 0 builds each artifact, the others join its training.

    torchrun --nproc_per_node=N run.py trainer=ddp trainer.devices=N ...   # or deepspeed_zero2/3

Every process runs the same stages. For each artifact of the stage cache (`cache.build_once`):
- rank 0 takes the cache's lock and reuses or builds the artifact, as a single process does;
  before building it leaves a marker `.<artifact>.go-<token>` (the token: drawn by rank 0 when
  the run starts and sent to every rank, so each run knows its own markers);
- a rank > 0 waits until the artifact is complete (then reuses it) or until its run's marker
  appears: it then trains with rank 0 (DDP or DeepSpeed need every rank in the Trainer) into
  a scratch folder it deletes; a stage without a Trainer (labels, statistics) is rank 0's.
Preemption (inform/runtime/preempt.py): Slurm's signal reaches every rank. Inside a Trainer
the ranks agree, each step, whether any of them got it, and stop after the same step; between
stages rank 0 decides and leaves `.stop-<token>` for the others. Only rank 0 requeues.
The ranks agree through files, not through a collective: rank 0 may wait on the lock for hours
while another job builds the same artifact, which no collective's timeout allows.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import torch
import torch.distributed as dist

_token: str | None = None


def world_size() -> int:
    """Processes in this run: torchrun's WORLD_SIZE, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0"))


def start() -> None:
    """Join the run's process group (torchrun's env:// rendezvous) and learn rank 0's token.
    Lightning's DDP and DeepSpeed strategies then use this process group. One process: nothing."""
    global _token
    if world_size() == 1 or _token is not None:
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    box = [secrets.token_hex(6) if rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    _token = box[0]


def go_marker(final: Path) -> Path:
    """Rank 0's sign, for this run's other ranks, that it builds `final` now."""
    return final.parent / f".{final.name}.go-{_token}"


def stop_marker(root: Path) -> Path:
    """Rank 0's sign, for this run's other ranks, that it has left for a preemption."""
    return Path(root) / f".stop-{_token}"
