"""Expand Hydra sweep overrides into grid points, the way `python run.py -m` does.

    python slurm/grid.py count beta=0.1,0.01 latent_dim=64,128        -> 4
    python slurm/grid.py point 3 beta=0.1,0.01 latent_dim=64,128      -> beta=0.01 / latent_dim=128

`point` prints one override per line (so values with spaces survive). Uses Hydra's own
override parser and BasicSweeper, so `range(...)`, `choice(...)`, quoting, `+key=` and
`experiment=...` behave exactly as under `-m`.
"""
import sys

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser


def points(args: list[str]) -> list[list[str]]:
    overrides = OverridesParser.create().parse_overrides(args)
    batches = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return [list(p) for batch in batches for p in batch]


def main(argv: list[str]) -> None:
    command, rest = argv[0], argv[1:]
    if command == "count":
        print(len(points(rest)))
    elif command == "point":
        grid = points(rest[1:])
        index = int(rest[0])
        if not 0 <= index < len(grid):
            sys.exit(f"grid.py: point {index} is outside the grid of {len(grid)} points")
        print("\n".join(grid[index]))
    else:
        sys.exit(f"grid.py: unknown command {command!r} (count | point)")


if __name__ == "__main__":
    main(sys.argv[1:])
