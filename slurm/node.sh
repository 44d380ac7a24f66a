#!/bin/bash
# One node's part of a multi-process Slurm run. run.sh and sweep.sh start it with srun, one
# task per node, when INFORM_NPROC > 1 or the job has several nodes (common.sh's LAUNCH):
#   srun --ntasks-per-node=1 bash slurm/node.sh run.py <overrides>
# It starts torchrun with INFORM_NPROC workers on this node; the nodes' torchruns meet in a
# c10d rendezvous on the job's first node, keyed by the job id, so the workers get their
# ranks. Preemption: srun passes the batch shell's USR1/USR2 on to this script on every node,
# which passes them on to its workers (the ranks: torchrun's children). torchrun itself runs
# with USR1/USR2 ignored, as it neither forwards them nor survives them.
set -uo pipefail
source "${INFORM_ROOT:?}/slurm/common.sh"
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
port=${INFORM_RDZV_PORT:-$((20000 + SLURM_JOB_ID % 20000))}  # by job id: jobs sharing a node do not collide
echo "inform-node $(hostname) ($((SLURM_NODEID + 1)) of $SLURM_JOB_NUM_NODES): torchrun, ${INFORM_NPROC:-1} workers, rendezvous $head:$port"
( trap '' USR1 USR2; exec "$PY" -m torch.distributed.run --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node="${INFORM_NPROC:-1}" \
    --rdzv_backend=c10d --rdzv_endpoint="$head:$port" --rdzv_id="$SLURM_JOB_ID" "$@" ) &
torchrun=$!
trap 'pkill -USR1 -P "$torchrun"' USR1
trap 'pkill -USR2 -P "$torchrun"' USR2
trap 'kill -TERM "$torchrun" 2>/dev/null' TERM  # torchrun stops its workers on TERM itself
while true; do
  wait "$torchrun"; status=$?
  if [ "$status" -gt 128 ] && kill -0 "$torchrun" 2>/dev/null; then continue; fi  # a trapped signal interrupted `wait`
  exit "$status"
done
