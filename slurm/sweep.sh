#!/bin/bash
# A Hydra grid as a Slurm job array, one point per array task; the arguments are Hydra
# overrides, as for `python run.py -m`, a grid file of conf/grid/ included:
#   sbatch slurm/sweep.sh beta=0.1,0.01 latent_dim=64,128
#   sbatch slurm/sweep.sh experiment=smoke seed=0,1,2 objective=bt,ib
#   sbatch slurm/sweep.sh grid=methods/objectives seed=0,1,2   # the grid's params, seed replaced
#   sbatch -p gpu --gres=gpu:1 --time=12:00:00 slurm/sweep.sh trainer=gpu ...
# The first job (this script without an array id) expands the grid (slurm/grid.py: the same
# points, in the same order, as `python run.py -m` with these arguments), makes the sweep
# folder, submits the array with the same resources and exits. The sweep folder: the one a grid
# file or `hydra.sweep.dir=` names (a grid's experiments/<name>/runs/...), else
# multirun/slurm-<job>/; INFORM_SWEEP_DIR wins over both. Each array task runs one point in
# <sweep folder>/<task>/ (from the Slurm ids: a requeued task finds its checkpoint), logs to
# <sweep folder>/logs/<name>_<array job>_<task>.out, and shares upstream stages (SFT, gold RM,
# labels) with the others through the artifact cache: the first task to need one builds it
# under a file lock, the others wait and reuse. All points are one W&B group, named after the
# sweep folder (`slurm-<job>`). Defaults below; override them the Slurm way.
#SBATCH --job-name=inform-sweep
#SBATCH --partition=debug
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=4G
#SBATCH --time=01:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
#SBATCH --open-mode=append
#SBATCH --output=slurm-logs/%x-%j.out
set -uo pipefail
source "${INFORM_ROOT:-$SLURM_SUBMIT_DIR}/slurm/common.sh"

if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
  n=$("$PY" slurm/grid.py count "$@") || exit 2
  sweep_dir=${INFORM_SWEEP_DIR:-$("$PY" slurm/grid.py dir "$@")} || exit 2
  sweep_dir=${sweep_dir:-$INFORM_MULTIRUN/slurm-$SLURM_JOB_ID}
  mkdir -p "$sweep_dir/logs"
  mapfile -t inherited < <(inherited_sbatch_options)
  array_id=$(sbatch --parsable --array=0-$((n - 1)) "${inherited[@]}" --job-name="${SLURM_JOB_NAME:-inform-sweep}" \
    --output="$sweep_dir/logs/%x_%A_%a.out" --export=ALL,INFORM_ROOT="$INFORM_ROOT",INFORM_SWEEP_DIR="$sweep_dir" \
    "$INFORM_ROOT/slurm/sweep.sh" "$@") || exit 1
  echo "inform sweep: $n points -> array job $array_id; runs and logs in $sweep_dir"
  echo "$array_id" > "$sweep_dir/array_job_id"
  exit 0
fi

mapfile -t point < <("$PY" slurm/grid.py point "$SLURM_ARRAY_TASK_ID" "$@")
[ "${#point[@]}" -gt 0 ] || { echo "inform: no grid point $SLURM_ARRAY_TASK_ID" >&2; exit 2; }
sweep_dir=${INFORM_SWEEP_DIR:-$INFORM_MULTIRUN/slurm-$SLURM_ARRAY_JOB_ID}
echo "inform sweep point $SLURM_ARRAY_TASK_ID: ${point[*]}"
run_forwarding_signals "${LAUNCH[@]}" run.py "${point[@]}" group="$(basename "$sweep_dir")" \
  hydra.run.dir="$sweep_dir/$SLURM_ARRAY_TASK_ID"
