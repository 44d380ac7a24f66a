"""The stage cache: `<artifacts>/<stage>-<hash>/`, content-addressed, atomic, locked.

The hash covers what determines a stage's output (`spec`): the stage table
(inform/pipeline/graph.py) makes it from the config keys the stage declares and the hashes of
its upstream stages; this file only stores and finds artifacts by it. A stage is built in a temporary folder beside its final place, marked
complete, then renamed in one step; a file lock makes concurrent jobs that need the same
stage wait for one builder instead of training it twice. A folder without the marker (a
killed job's leftovers) is never trusted: it is rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from inform import __version__
from inform.config.plain import plain
from inform.runtime import ranks
from inform.runtime.files import make_dir
from inform.runtime.preempt import PREEMPTION

log = logging.getLogger("inform")
_announced: set[Path] = set()  # reused artifacts already reported by this process
COMPLETE = "COMPLETE"
SPEC = "spec.json"
STOP_MARKER_KEPT_S = 3600  # ranks > 0 poll every 0.5 s: an hour-old stop marker has been read
LOCK_POLL_S = 5.0  # how often a job waiting for another's build checks for a preemption signal


def spec_hash(spec: dict) -> str:
    """12 hex digits of the spec's canonical JSON, with inform's version (new code, new artifacts)."""
    blob = json.dumps({"inform": __version__, **plain(spec)}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def artifact_path(root: str | Path, stage: str, spec: dict) -> Path:
    return Path(root) / f"{stage}-{spec_hash(spec)}"


def is_complete(path: Path) -> bool:
    return (path / COMPLETE).is_file()


def build_once(root: str | Path, stage: str, spec: dict, build: Callable[[Path], None], trains: bool = True) -> Path:
    """The artifact of `stage` for `spec`, built by `build(tmp_dir)` unless already complete.

    `trains`: the build runs a Trainer, which every rank of a multi-process run must join
    (inform/runtime/ranks.py); otherwise rank 0 builds alone."""
    final = artifact_path(root, stage, spec)
    if ranks.rank() > 0:
        stop_if_rank0_stopped(final.parent, stage)
    if is_complete(final):  # a rank > 0 too: rank 0 may have finished a short stage before it came
        announce_reuse(stage, final)
        return final
    make_dir(final.parent, "paths.artifacts")
    if ranks.rank() > 0:  # rank 0 decides, also whether to stop for a preemption
        follow(final, stage, build if trains else None)
        announce_reuse(stage, final)
        return final
    leave_if_preempted(final)  # a preemption signal between stages: requeue now
    with wait_for_lock(final):
        if is_complete(final):  # another job built it while we waited
            log.info("%s: reusing %s (built by another job)", stage, final)
            return final
        if final.exists():
            log.warning("%s: %s has no %s marker (an interrupted copy?): not trusted, rebuilding", stage, final, COMPLETE)
        for stale in final.parent.glob(f".{final.name}.tmp-*"):  # a killed build's leftovers; we hold the lock
            log.warning("%s: removing %s, left by an interrupted build", stage, stale)
            shutil.rmtree(stale, ignore_errors=True)
        for stale in final.parent.glob(f".{final.name}.go-*"):  # a preempted or killed run's (a live one holds the lock)
            stale.unlink(missing_ok=True)
        for stale in final.parent.glob(".stop-*"):  # earlier runs' stop markers, long read
            if time.time() - stale.stat().st_mtime > STOP_MARKER_KEPT_S:
                stale.unlink(missing_ok=True)
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        marker = ranks.go_marker(final) if ranks.world_size() > 1 else None
        if marker is not None:
            marker.write_text("")
        build(tmp)
        (tmp / SPEC).write_text(json.dumps(plain(spec), indent=2, sort_keys=True, default=str))
        (tmp / COMPLETE).write_text("")
        if final.exists():  # an incomplete leftover of a killed job
            shutil.rmtree(final)
        os.replace(tmp, final)
        if marker is not None:
            marker.unlink(missing_ok=True)
    log.info("%s: built %s", stage, final)
    _announced.add(final)
    return final


def announce_reuse(stage: str, final: Path) -> None:
    """Say once per process that it uses an artifact it did not build: rank 0 (or a single
    process) reuses it; a rank > 0 uses rank 0's, whether it waited for the build or not."""
    if final in _announced:
        return
    if ranks.rank() > 0:
        log.info("%s: rank %d uses %s", stage, ranks.rank(), final)
    else:
        log.info("%s: reusing %s", stage, final)
    _announced.add(final)


def leave_if_preempted(final: Path) -> None:
    """Rank 0 between stages, after a preemption signal: tell the other ranks (a stop marker,
    as they wait on files, not on a collective) and hand the job back to Slurm."""
    if not PREEMPTION.requested:
        return
    if ranks.world_size() > 1:
        ranks.stop_marker(final.parent).write_text("")
    PREEMPTION.requeue_and_exit()


def stop_if_rank0_stopped(root: Path, stage: str) -> None:
    """Rank > 0: leave when rank 0 has left for a preemption (its stop marker, one per run)."""
    if ranks.stop_marker(root).exists():
        log.info("%s: rank %d stops with rank 0 (preemption; rank 0 requeues the job)", stage, ranks.rank())
        raise SystemExit(0)


@contextmanager
def wait_for_lock(final: Path):
    """The artifact's file lock, held by one builder at a time; a job waiting for it (another
    job builds the same artifact, maybe for hours) still leaves when preempted."""
    lock = FileLock(str(final) + ".lock")
    while True:
        try:
            lock.acquire(timeout=LOCK_POLL_S)
            break
        except Timeout:
            leave_if_preempted(final)
    try:
        yield
    finally:
        lock.release()


def follow(final: Path, stage: str, build: Callable[[Path], None] | None, poll_s: float = 0.5) -> Path:
    """Rank > 0 of a multi-process run: reuse `final` once complete; when rank 0 starts building
    it, join the build (its Trainer needs every rank) in a scratch folder, then wait for rank 0's;
    when rank 0 stops for a preemption instead (its stop marker), stop too: rank 0 requeues.

    A rank > 0 never stops on its own signal here: rank 0 may have started the next Trainer,
    which would wait for it forever. Inside a Trainer the ranks agree on the step to stop at
    (`PreemptCheckpoint`)."""
    marker = ranks.go_marker(final)
    while not is_complete(final):
        stop_if_rank0_stopped(final.parent, stage)
        if build is not None and marker.exists():
            scratch = final.parent / f".{final.name}.rank{ranks.rank()}-{os.getpid()}"
            scratch.mkdir()
            try:
                build(scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            build = None  # joined; now wait for rank 0's export
        time.sleep(poll_s)
    return final
