#!/bin/bash
# (c) The grid conf/grid/csi_traces.yaml, then analyze.py: `make experiment-csi-traces`
# (experiments/README.md). Arguments: Hydra overrides, --slurm for a job array.
exec make -C "$(dirname "$0")/../.." experiment-csi-traces EXPERIMENT_ARGS="$*"
