"""Read a W&B offline run (`offline-run-*/run-*.wandb`) back, without network or account.

wandb >= 0.31 offline runs write no summary file and no longer ship a reader. The `.wandb`
file is a 7-byte header (":W&B", 2-byte magic, 1-byte version) followed by records framed
as a LevelDB log: 32 KiB blocks; each chunk has a 7-byte header (crc32c: 4, length: 2 LE,
type: 1; FULL=1, FIRST=2, MIDDLE=3, LAST=4); a block tail under 7 bytes is padding. Each
assembled record is a `wandb_internal_pb2.Record` protobuf.

Used by the tests (assert on logged values) and by the experiments' analysis scripts.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    path: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def series(self, key: str, step_key: str = "trainer/global_step") -> list[tuple[int, Any]]:
        """(step, value) for every history row holding `key`, in logged order; the step is
        Lightning's `trainer/global_step` where logged, else W&B's own `_step`."""
        return [(row.get(step_key, row.get("_step")), row[key]) for row in self.history if key in row]


def _records(data: bytes):
    """Raw record payloads of a LevelDB-log-framed byte string (header already skipped)."""
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        pos += HEADER
        chunk = data[pos : pos + length]
        pos += length
        if kind == 0 and length == 0:  # zero padding at the end of a block
            continue
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""


def _item_value(item) -> Any:
    kind = item.WhichOneof("value") if "value" in {o.name for o in item.DESCRIPTOR.oneofs} else None
    if kind in ("number", "integer", "boolean", "text"):
        return getattr(item, kind)
    if kind == "none":
        return None
    if kind == "json":
        return json.loads(item.json)
    return json.loads(item.value_json) if item.value_json else None


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_run(run_dir: str | Path) -> OfflineRun:
    """Parse the `.wandb` file of one offline run folder (or the file itself)."""
    run_dir = Path(run_dir)
    file = run_dir if run_dir.is_file() else next(run_dir.glob("run-*.wandb"))
    data = file.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{file}: not a W&B run file")
    run = OfflineRun(path=file.parent)
    for payload in _records(data):
        rec = pb.Record()
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.run_id, run.name, run.group, run.job_type = r.run_id, r.display_name, r.run_group, r.job_type
            for it in r.config.update:
                run.config[_key(it)] = json.loads(it.value_json)
        elif kind == "config":
            for it in rec.config.update:
                run.config[_key(it)] = json.loads(it.value_json)
        elif kind == "history":
            row = {_key(it): _item_value(it) for it in rec.history.item}
            if rec.history.HasField("step") and "_step" not in row:
                row["_step"] = rec.history.step.num
            run.history.append(row)
        elif kind == "summary":
            for it in rec.summary.update:
                run.summary[_key(it)] = json.loads(it.value_json)
        elif kind == "files":
            run.files.extend(f.path for f in rec.files.files)
    for row in run.history:  # the last logged value of each key, as W&B's summary shows it
        run.summary.update({k: v for k, v in row.items() if not k.startswith("_")})
    return run


def find_runs(root: str | Path, merge_resumed: bool = False) -> list[OfflineRun]:
    """Every offline run under `root`, oldest first.

    A run resumed after preemption logs to the same run id from a new process, which W&B
    offline writes as a second `offline-run-*` folder (`wandb sync` uploads both into one
    run). `merge_resumed=True` joins them: one OfflineRun per id, histories in order.
    """
    runs = [read_run(d) for d in sorted(Path(root).rglob("offline-run-*"), key=lambda d: d.name) if d.is_dir()]
    if not merge_resumed:
        return runs
    merged: dict[str, OfflineRun] = {}
    for run in runs:
        if run.run_id in merged:
            first = merged[run.run_id]
            first.history.extend(run.history)
            first.summary.update(run.summary)
            first.files.extend(run.files)
        else:
            merged[run.run_id] = run
    return list(merged.values())
