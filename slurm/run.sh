#!/bin/bash
# One inform run as a Slurm job; the arguments are Hydra overrides.
#   sbatch slurm/run.sh stage=sft
#   sbatch -p gpu --gres=gpu:1 --time=12:00:00 slurm/run.sh experiment=inform_simulated trainer=gpu
# The run folder comes from the job id ($INFORM_OUTPUTS/slurm-<job>/, INFORM_OUTPUTS=outputs
# by default), never from a timestamp, so a
# requeued job finds its own checkpoint. Defaults below; override them on the sbatch command
# line or with SBATCH_* variables, the usual Slurm way. For a GPU add --gres=gpu:1; for N
# GPUs of one node --gres=gpu:N and INFORM_NPROC=N with trainer.devices=N (srun starts
# slurm/node.sh, whose torchrun starts one process per GPU; a preemption signal reaches each,
# and all of them resume); add --nodes=M for N on each of M nodes (not tried: one-node Slurm here).
#SBATCH --job-name=inform
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
run_dir=$INFORM_OUTPUTS/slurm-$SLURM_JOB_ID
run_forwarding_signals "${LAUNCH[@]}" run.py "$@" hydra.run.dir="$run_dir"
