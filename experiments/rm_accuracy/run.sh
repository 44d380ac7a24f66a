#!/bin/bash
# How accurate is each objective's reward model on held-out human preferences?
# Trains BT, IB and BSR reward models (stage=rm), then scores each on HH helpful-base test,
# HH harmless-base test, AlpacaFarm human preferences, TL;DR comparisons (validation) and the
# synthetic task's held-out pairs, through the real loaders (experiments/rm_accuracy/evaluate.py).
#   bash experiments/rm_accuracy/run.sh --tiny          # here, on CPU: the smoke pipeline's proxies + gold RM (~5 min, 2 cores);
#                                                       #   they know only the synthetic task: HH etc. read ~chance
#   bash experiments/rm_accuracy/run.sh                 # one GPU: Pythia-410m RMs on HH helpful-base, one after another
#   bash experiments/rm_accuracy/run.sh --slurm         # the GPU sweep as a Slurm job array; evaluate when it is done
#   bash experiments/rm_accuracy/run.sh --tiny --slurm  # the tiny sweep as a Slurm job array
# The RMs are cached in $ARTIFACTS (the experiment's own cache, so the evaluation sees exactly
# these RMs); the table and figure go to $RESULTS (results.md, rm_accuracy.png, wandb/).
# The GPU mode needs the hub (Pythia weights, Anthropic/hh-rlhf); without network the
# evaluation skips the hub sets with a warning (HF_DATASETS_OFFLINE=1 makes that instant).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${INFORM_PYTHON:-.venv/bin/python}
OUT=${OUT:-experiments/rm_accuracy/runs}
ARTIFACTS=${ARTIFACTS:-$OUT/artifacts}
RESULTS=${RESULTS:-experiments/rm_accuracy}
SEEDS=${SEEDS:-0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
tiny=0 slurm=0
for arg in "$@"; do
  case $arg in
    --tiny) tiny=1 ;;
    --slurm) slurm=1 ;;
    *) echo "unknown argument $arg (use --tiny and/or --slurm)" >&2; exit 2 ;;
  esac
done
if [ $tiny = 1 ]; then
  # the smoke pipeline's proxies (rm.data=labels: gold-ranked SFT samples of the synthetic task)
  overrides=(stage=rm "objective=bt,ib,bsr" experiment=smoke "seed=$SEEDS" name=rm-accuracy)
  eval_args=(--limit "${LIMIT:-500}" --device cpu --stages rm,gold)  # gold: the RM trained on the "human" pairs
  sbatch_args=()
else
  # RMs fine-tuned from Pythia-410m on HH helpful-base train pairs (rm.data=human, rm.init=base);
  # 1 epoch (~43k pairs), lr 1e-5, 16 pairs a step, sequences up to 512 + 256 tokens.
  overrides=(stage=rm data=hh_rlhf rm.data=human rm.init=base "objective=bt,ib,bsr" model@reward=pythia-410m
             trainer=gpu rm.epochs=1 rm.batch_size=16 rm.lr=1.0e-5 rm.warmup_steps=100 rm.val_size=512
             reward.gradient_checkpointing=true "seed=$SEEDS" name=rm-accuracy)
  eval_args=(--limit "${LIMIT:-2000}" --dtype bfloat16 --batch-size 32)
  read -r -a sbatch_args <<< "${SBATCH_GPU_ARGS:---gres=gpu:1 --cpus-per-task=8 --mem=64G --time=12:00:00}"
fi
overrides+=("paths.artifacts=$ARTIFACTS")
evaluate=("$PY" experiments/rm_accuracy/evaluate.py "$ARTIFACTS" --out "$RESULTS" "${eval_args[@]}")
if [ $slurm = 1 ]; then
  INFORM_SWEEP_DIR="$OUT/sweep" sbatch "${sbatch_args[@]}" slurm/sweep.sh "${overrides[@]}"
  echo "when the array is done: ${evaluate[*]}"
else
  "$PY" run.py -m "${overrides[@]}" logger=wandb "hydra.sweep.dir=$OUT/sweep"
  "${evaluate[@]}"
fi
