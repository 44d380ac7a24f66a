#!/bin/bash
# Which detector warns earliest, and which mitigation keeps gold reward highest at equal KL?
# The tiny pipeline, 3 seeds: BT and IB proxies with every detector on; then plain PPO vs
# IBL vs EPPO (3 coefficients each) on the IB proxy (the default objective, beta 0.1).
#   bash experiments/detectors/run.sh            # here, one run after another (~15 min on 2 cores)
#   bash experiments/detectors/run.sh --slurm    # as Slurm job arrays; analyze when they finish
# Then (run.sh does it when local):  python experiments/detectors/analyze.py experiments/detectors/runs
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${INFORM_PYTHON:-.venv/bin/python}
OUT=${OUT:-experiments/detectors/runs}
SEEDS=${SEEDS:-0,1,2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
sweeps=(
  "detect|objective=bt,ib seed=$SEEDS name=detectors"
  "ibl|ibl_coef=0.01,0.05,0.1 seed=$SEEDS name=mitigations"
  "eppo|energy_coef=0.5,1.0,2.0 seed=$SEEDS name=mitigations"
)
for entry in "${sweeps[@]}"; do
  dir=${entry%%|*}
  read -r -a overrides <<< "${entry#*|}"
  if [ "${1:-}" = "--slurm" ]; then
    INFORM_SWEEP_DIR="$OUT/$dir" sbatch slurm/sweep.sh "${overrides[@]}"
  else
    "$PY" run.py -m "${overrides[@]}" logger=wandb "hydra.sweep.dir=$OUT/$dir"
  fi
done
if [ "${1:-}" = "--slurm" ]; then
  echo "when the arrays are done: $PY experiments/detectors/analyze.py $OUT"
else
  "$PY" experiments/detectors/analyze.py "$OUT"
fi
