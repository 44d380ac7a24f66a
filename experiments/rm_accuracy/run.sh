#!/bin/bash
# (d) `make experiment-rm-accuracy` (experiments/README.md): --tiny: the grid
# conf/grid/rm_accuracy/tiny.yaml here on CPU; without it conf/grid/rm_accuracy/gpu.yaml
# (Pythia-410m RMs, one GPU); --slurm: as a job array; then evaluate.py. Other arguments:
# Hydra overrides.
exec make -C "$(dirname "$0")/../.." experiment-rm-accuracy RM_ACCURACY_ARGS="$*"
