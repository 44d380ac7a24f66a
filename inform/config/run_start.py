"""The time in the run folder's name (`outputs/${run_start:%Y-%m-%d}/${run_start:%H-%M-%S}`),
the same for every rank of one torchrun launch.

Hydra's own `${now:...}` is read by each process when it starts, so torchrun's ranks, which
start a few hundred milliseconds apart, could name two folders when a second ticks between
them: each rank would then log, checkpoint and resume in its own folder. Under torchrun
(`TORCHELASTIC_RUN_ID` set) every rank is a child of the one torchrun agent, so the agent's
start time, read from /proc, is a time they all share. Anywhere else (one process, no /proc)
it is this process's first call, as `now` is. A folder given by `hydra.run.dir` (the Slurm
scripts give one) needs none of this.
"""
from __future__ import annotations

import os
import time
from datetime import datetime
from functools import cache


def run_start(pattern: str) -> str:
    """strftime(pattern) of the launch time: torchrun's agent start under torchrun, else now."""
    return datetime.fromtimestamp(launch_time()).strftime(pattern)


@cache
def launch_time() -> float:
    """Seconds since the epoch; cached, so the day and the time of one folder name agree."""
    parent = os.getppid()
    if "TORCHELASTIC_RUN_ID" in os.environ and parent > 0:  # pid 1 too: torchrun as a container's entry point
        started = process_start_time(parent)
        if started is not None:
            return started
    return time.time()


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (Linux /proc: boot time + its start in clock ticks), or None."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
        boot = next(int(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (command name)": state is field 3
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
