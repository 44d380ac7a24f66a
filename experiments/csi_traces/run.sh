#!/bin/bash
# (c) CSI traces against the gold reward, with the step where CSI early stopping (InfoRM
# appendix G, e_t > e_max) fires and the step of the gold peak: BT and IB proxies, 3 seeds.
#   bash experiments/csi_traces/run.sh            # here (~8 min on 2 cores)
#   bash experiments/csi_traces/run.sh --slurm
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${INFORM_PYTHON:-.venv/bin/python}
OUT=${OUT:-experiments/csi_traces/runs}
SEEDS=${SEEDS:-0,1,2}
EXTRA=${EXTRA:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
read -r -a overrides <<< "objective=bt,ib seed=$SEEDS detect=[csi] name=csi_traces $EXTRA"
if [ "${1:-}" = "--slurm" ]; then
  INFORM_SWEEP_DIR="$OUT" sbatch slurm/sweep.sh "${overrides[@]}"
  echo "when the array is done: $PY experiments/csi_traces/analyze.py $OUT"
else
  "$PY" run.py -m "${overrides[@]}" logger=wandb "hydra.sweep.dir=$OUT"
  "$PY" experiments/csi_traces/analyze.py "$OUT"
fi
