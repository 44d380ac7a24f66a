#!/bin/bash
# (b) The grid conf/grid/sensitivity.yaml, then analyze.py: `make experiment-sensitivity`
# (experiments/README.md). Arguments: Hydra overrides (seed=0,1,2: three seeds a point),
# --slurm for a job array.
exec make -C "$(dirname "$0")/../.." experiment-sensitivity EXPERIMENT_ARGS="$*"
