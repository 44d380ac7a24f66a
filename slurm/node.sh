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
# How common.sh's run_passing_signals reaches the run here: a signal goes to torchrun's
# children (the ranks); TERM to torchrun, which stops its workers, INFORM_REQUEUE_GRACE_S
# after the run has asked for its requeue (the batch shell waits 30 s more); the signal is
# not sent again from here (the batch shell sends it again through srun).
forward_signal() { pkill "-$1" -P "$2"; }
stop_run() { kill -TERM "$1" 2>/dev/null; }
LOG_TAG=inform-node
REQUEUE_GRACE_S=${INFORM_REQUEUE_GRACE_S:-60}
RESEND_S=0
run_passing_signals "$PY" -m torch.distributed.run --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node="${INFORM_NPROC:-1}" \
  --rdzv_backend=c10d --rdzv_endpoint="$head:$port" --rdzv_id="$SLURM_JOB_ID" \
  --rdzv_conf="is_host=$([ "$SLURM_NODEID" = 0 ] && echo true || echo false)" "$@"
