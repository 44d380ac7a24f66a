#!/bin/bash
# The grids conf/grid/detectors/{detect,ibl,eppo}.yaml, then analyze.py: `make
# experiment-detectors` (experiments/README.md). Arguments: Hydra overrides for every grid
# (a grid's entry for the same key is replaced), --slurm for job arrays.
exec make -C "$(dirname "$0")/../.." experiment-detectors EXPERIMENT_ARGS="$*"
