#!/bin/bash
# The simulated gold-RM pipeline as chained Slurm jobs (run it on the login node, not with sbatch):
#   bash slurm/pipeline.sh beta=0.1,0.01 latent_dim=64,128
#   sft  ->  gold  ->  label  ->  array of proxy RM + PPO runs, one task per grid point
# Each arrow is --dependency=afterok. The shared stages run with the first grid point's
# overrides (stages the sweep values do not change: the array tasks then find them in the
# artifact cache; a swept value that does change them, e.g. seed, makes the tasks build
# their own). Extra sbatch options for every job: INFORM_SBATCH="-p gpu --gres=gpu:1".
# Prints the job ids; logs in multirun/slurm-pipeline-<sft job>/logs/.
set -uo pipefail
source "$(cd "$(dirname "$0")/.." && pwd)/slurm/common.sh"
read -r -a extra <<< "${INFORM_SBATCH:-}"
n=$("$PY" slurm/grid.py count "$@") || exit 2
mapfile -t first < <("$PY" slurm/grid.py point 0 "$@")
mkdir -p slurm-logs

submit() {  # submit <stage> <dependency or ""> : one run.sh job, prints its id
  local stage=$1 dep=$2
  sbatch --parsable "${extra[@]}" --job-name="inform-$stage" ${dep:+--dependency=afterok:$dep} \
    --export=ALL,INFORM_ROOT="$INFORM_ROOT" slurm/run.sh "${first[@]}" stage="$stage"
}
sft=$(submit sft "") || exit 1
sweep_dir=${INFORM_SWEEP_DIR:-$INFORM_MULTIRUN/slurm-pipeline-$sft}
mkdir -p "$sweep_dir/logs"
gold=$(submit gold "$sft") || exit 1
label=$(submit label "$gold") || exit 1
array=$(sbatch --parsable "${extra[@]}" --job-name=inform-ppo --dependency=afterok:"$label" --array=0-$((n - 1)) \
  --output="$sweep_dir/logs/%x_%A_%a.out" --export=ALL,INFORM_ROOT="$INFORM_ROOT",INFORM_SWEEP_DIR="$sweep_dir" \
  slurm/sweep.sh "$@" stage=ppo) || exit 1
echo "sft $sft"
echo "gold $gold"
echo "label $label"
echo "ppo $array ($n points)"
echo "runs: $INFORM_OUTPUTS/slurm-<job>/ (logs in slurm-logs/) for the shared stages, $sweep_dir/ for the array"
