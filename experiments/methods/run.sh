#!/bin/bash
# (a) The grids conf/grid/methods/{objectives,ensembles,bt_kl}.yaml, then analyze.py: `make
# experiment-methods` (experiments/README.md). Arguments: Hydra overrides for every grid
# (a grid's entry for the same key is replaced), --slurm for job arrays.
exec make -C "$(dirname "$0")/../.." experiment-methods EXPERIMENT_ARGS="$*"
