#!/bin/bash
# (a) Gold and proxy reward against KL for each method against over-optimization, at 3 proxy
# sizes, with and without 25% label noise (InfoRM sec. 4.1, Fig. 4/5; BSR Fig. 3):
#   BT, IB (InfoRM), BSR            objective=bt,ib,bsr
#   Ensemble-UWO, WARM (3 members)  objective=bt ensemble.members=3 ensemble.combine=uwo,warm
#   BT + KL                         objective=bt kl_coef=0.2 (4x the default 0.05)
# Proxy sizes at tiny scale: model@reward=tiny-small,tiny,tiny-large (~47k, 0.14M, 0.68M
# parameters; each RM starts from an SFT run of its own preset, rm.init=sft). On a cluster:
#   SIZES=pythia-70m,pythia-410m,pythia-1.4b EXTRA="experiment=inform_simulated" bash experiments/methods/run.sh --slurm
#   bash experiments/methods/run.sh            # here, one run after another (~35 min on 2 cores)
#   SIZES=tiny NOISE=0.25 SEEDS=0,1,2 OUT=experiments/methods/runs/seeds RESULTS=experiments/methods/seeds \
#     EXTRA="paths.artifacts=experiments/methods/runs/seeds-cache" bash experiments/methods/run.sh
#       # one cell, 3 seeds (~20 min); its own cache, so that no PPO point is reused without a W&B run here
# Then (run.sh does it when local):  python experiments/methods/analyze.py experiments/methods/runs
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${INFORM_PYTHON:-.venv/bin/python}
OUT=${OUT:-experiments/methods/runs}
SIZES=${SIZES:-tiny-small,tiny,tiny-large}
NOISE=${NOISE:-0.0,0.25}
SEEDS=${SEEDS:-0}
EXTRA=${EXTRA:-}
RESULTS=${RESULTS:-experiments/methods}  # where the analysis writes methods.png and results.md
PANELS=size
[[ "$SEEDS" == *,* ]] && PANELS=method  # several seeds: a panel per method, a line per seed
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
common="model@reward=$SIZES label_noise=$NOISE seed=$SEEDS name=methods $EXTRA"
sweeps=(
  "objectives|objective=bt,ib,bsr $common"
  "ensembles|objective=bt ensemble.members=3 ensemble.combine=uwo,warm $common"
  "bt_kl|objective=bt kl_coef=0.2 $common"
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
  echo "when the arrays are done: $PY experiments/methods/analyze.py $OUT --out $RESULTS --panels $PANELS"
else
  "$PY" experiments/methods/analyze.py "$OUT" --out "$RESULTS" --panels "$PANELS"
fi
