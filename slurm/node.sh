#!/bin/bash
# One node's part of a multi-process Slurm run. run.sh and sweep.sh start it with srun, one
# task per node, when INFORM_NPROC > 1 or the job has several nodes (common.sh's LAUNCH):
#   srun --ntasks-per-node=1 bash slurm/node.sh run.py <overrides>
# It starts torchrun with INFORM_NPROC workers on this node; the nodes' torchruns meet in a
# c10d rendezvous on the job's first node, keyed by the job id, so the workers get their
# ranks. Preemption: srun passes the batch shell's USR1/USR2 on to this script on every node,
# which passes them on to its workers (the ranks: torchrun's children). torchrun itself runs
# with USR1/USR2 ignored, as it neither forwards them nor survives them. TERM (the batch
# shell sends it to the step's tasks with scancel, as srun would answer its own TERM with
# SIGKILL) goes to torchrun, which stops its workers.
trap '' USR1 USR2  # first: a signal before the forwarding traps below must not kill this script
set -uo pipefail
source "${INFORM_ROOT:?}/slurm/common.sh"
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
addr=$(scontrol show node "$head" -o 2>/dev/null | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2)
head=${addr:-$head}  # the address Slurm reaches the node at (its name need not resolve)
port=${INFORM_RDZV_PORT:-$((15000 + SLURM_JOB_ID % 15000))}  # by job id, so jobs sharing a node differ; below the ephemeral ports
echo "inform-node $(hostname) ($((SLURM_NODEID + 1)) of $SLURM_JOB_NUM_NODES): torchrun, ${INFORM_NPROC:-1} workers, rendezvous $head:$port"
"$PY" -m torch.distributed.run --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node="${INFORM_NPROC:-1}" \
  --rdzv_backend=c10d --rdzv_endpoint="$head:$port" --rdzv_id="$SLURM_JOB_ID" \
  --rdzv_conf="is_host=$([ "$SLURM_NODEID" = 0 ] && echo true || echo false)" "$@" &
torchrun=$!

# Once the run has asked for its requeue (its checkpoint is saved), torchrun has
# INFORM_REQUEUE_GRACE_S (60) seconds to exit before it is stopped with TERM.
stop_after_grace() {
  local asked=0
  while sleep 1 && kill -0 "$torchrun" 2>/dev/null; do
    [ -s "${INFORM_REQUEUE_FILE:-}" ] && asked=$((asked + 1))
    if [ "$asked" -ge "${INFORM_REQUEUE_GRACE_S:-60}" ]; then
      echo "inform-node: the run did not exit ${asked}s after its checkpoint; stopping it"
      kill -TERM "$torchrun" 2>/dev/null; return
    fi
  done
}
watching=""
on_preempt_signal() {
  pkill "-$1" -P "$torchrun"
  [ -n "$watching" ] || { stop_after_grace & watching=1; }
}
trap 'on_preempt_signal USR1' USR1
trap 'on_preempt_signal USR2' USR2
trap 'kill -TERM "$torchrun" 2>/dev/null' TERM
while true; do
  wait "$torchrun"; status=$?
  if [ "$status" -gt 128 ] && kill -0 "$torchrun" 2>/dev/null; then continue; fi  # a trapped signal interrupted `wait`
  exit "$status"
done
