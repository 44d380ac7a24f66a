"""Expand a Hydra sweep into its jobs exactly as `python run.py -m` does, for Slurm job arrays.

    python slurm/grid.py count beta=0.1,0.01 latent_dim=64,128        -> 4
    python slurm/grid.py point 3 beta=0.1,0.01 latent_dim=64,128      -> beta=0.01 / latent_dim=128
    python slurm/grid.py count grid=methods/objectives seed=0,1,2    -> 54 (conf/grid/methods/objectives.yaml)
    python slurm/grid.py list grid=sensitivity                       -> every job, one a line
    python slurm/grid.py dir grid=sensitivity                        -> experiments/sensitivity/runs

The arguments are the overrides of `python run.py -m`. As Hydra does under -m, the config is
composed with the overrides that sweep nothing (so `grid=<file in conf/grid/>`, an
`experiment=`, `hydra.*` apply); its `hydra.sweeper.params` come first, then the command
line's non-Hydra overrides, and Hydra's BasicSweeper turns that list into jobs: one entry per
key, a later entry for a key replacing an earlier one in its place (so `seed=0,1,2` on the
command line replaces a grid's `seed`), the jobs the cartesian product of the entries in
order. The same order as `python run.py -m`, so job i here is job i there (basic_sweeper.py,
BasicSweeper.sweep / _parse_config / split_arguments; the tests compare the two).

`point` prints one override per line (so values with spaces survive): job i's overrides (what
Hydra writes to its .hydra/overrides.yaml), then the command line's `hydra.*` overrides, which
Hydra applies to every job too. `count` also composes every job first, as BasicSweeper does
before it launches any, so that a grid naming a key the config lacks fails here, before an
array is submitted. `dir` prints the sweep folder a grid file or `hydra.sweep.dir=` chose,
and nothing when it is conf/config.yaml's (dated) default.
"""
from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONF = Path(__file__).resolve().parents[1] / "conf"


class Grid:
    """The composed sweep config and its jobs, for the command-line overrides `args`."""

    def __init__(self, args: list[str]):
        GlobalHydra.instance().clear()
        initialize_config_dir(config_dir=str(CONF), version_base="1.3")
        self.loader = GlobalHydra.instance().config_loader()
        parsed = OverridesParser.create(config_loader=self.loader).parse_overrides(args)
        # as `-m` composes: the sweep overrides are left out (Hydra skips them in MULTIRUN mode)
        self.cfg = compose("config", overrides=[o.input_line for o in parsed if not o.is_sweep_override()],
                           return_hydra_config=True)
        self.hydra_overrides = [o.input_line for o in parsed if o.is_hydra_override()]
        task = [o.input_line for o in parsed if not o.is_hydra_override()]  # hydra.overrides.task
        # BasicSweeper.sweep: params_conf = self._parse_config() + arguments, then split_arguments
        params = self.cfg.hydra.sweeper.params or {}
        params_conf = [f"{k}={v}" for k, v in params.items()]
        overrides = OverridesParser.create(config_loader=self.loader).parse_overrides(params_conf + task)
        self.jobs = [list(job) for batch in BasicSweeper.split_arguments(overrides, max_batch_size=None) for job in batch]

    def check(self) -> None:
        """Compose every job, as BasicSweeper.validate_batch_is_legal does before a launch."""
        for i, job in enumerate(self.jobs):
            try:
                compose("config", overrides=self.hydra_overrides + job, return_hydra_config=True)
            except (HydraException, OmegaConfBaseException) as err:
                raise SystemExit(f"grid.py: job {i} ({' '.join(job)}) does not compose:\n{err}") from None

    def sweep_dir(self) -> str:
        chosen = OmegaConf.to_container(self.cfg.hydra.sweep, resolve=False)["dir"]
        default = OmegaConf.to_container(OmegaConf.load(CONF / "config.yaml").hydra.sweep, resolve=False)["dir"]
        return "" if chosen == default else str(self.cfg.hydra.sweep.dir)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: grid.py count | list | dir | point <i>  [overrides]")
    command, rest = argv[0], argv[1:]
    if command == "point":
        if not rest or not rest[0].lstrip("-").isdigit():
            sys.exit("usage: grid.py point <i> [overrides]")
        index, rest = int(rest[0]), rest[1:]
    elif command not in ("count", "list", "dir"):
        sys.exit(f"grid.py: unknown command {command!r} (count | point | list | dir)")
    try:
        grid = Grid(rest)
    except (HydraException, OmegaConfBaseException) as err:
        sys.exit(f"grid.py: {err}")
    if command == "count":
        grid.check()
        print(len(grid.jobs))
    elif command == "list":
        import shlex
        print("\n".join(shlex.join(job) for job in grid.jobs))
    elif command == "dir":
        print(grid.sweep_dir())
    else:
        if not 0 <= index < len(grid.jobs):
            sys.exit(f"grid.py: point {index} is outside the grid of {len(grid.jobs)} points")
        print("\n".join(grid.jobs[index] + grid.hydra_overrides))


if __name__ == "__main__":
    main(sys.argv[1:])
