#!/bin/bash
# (b) InfoRM's sensitivity to its two hyperparameters (seed 001, Fig. 9 / Table 6): the
# beta x latent_dim grid of IB proxies, each followed by PPO; gold reward at the peak and at
# the end, and the RM's held-out accuracy, per grid point.
#   bash experiments/sensitivity/run.sh            # here (~8 min on 2 cores)
#   EXTRA="seed=0,1,2" bash experiments/sensitivity/run.sh   # three seeds a point (~30 min)
#   bash experiments/sensitivity/run.sh --slurm    # one Slurm job array; analyze when it is done
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${INFORM_PYTHON:-.venv/bin/python}
OUT=${OUT:-experiments/sensitivity/runs}
BETAS=${BETAS:-0.1,0.01,0.001}
DIMS=${DIMS:-32,64,128}
EXTRA=${EXTRA:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
read -r -a overrides <<< "objective=ib beta=$BETAS latent_dim=$DIMS name=sensitivity $EXTRA"
if [ "${1:-}" = "--slurm" ]; then
  INFORM_SWEEP_DIR="$OUT" sbatch slurm/sweep.sh "${overrides[@]}"
  echo "when the array is done: $PY experiments/sensitivity/analyze.py $OUT"
else
  "$PY" run.py -m "${overrides[@]}" logger=wandb "hydra.sweep.dir=$OUT"
  "$PY" experiments/sensitivity/analyze.py "$OUT"
fi
