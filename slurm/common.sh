# Shared by run.sh and sweep.sh (sourced inside a job) and pipeline.sh (on the login node).
# sbatch runs a *copy* of the script from its spool folder, so the repository is found from
# $INFORM_ROOT, else the folder sbatch was called from ($SLURM_SUBMIT_DIR): submit from the
# repository root, or export INFORM_ROOT.
INFORM_ROOT=${INFORM_ROOT:-${SLURM_SUBMIT_DIR:-$(pwd)}}
export INFORM_ROOT
cd "$INFORM_ROOT" || { echo "inform: no repository at INFORM_ROOT=$INFORM_ROOT" >&2; exit 2; }
[ -f run.py ] || { echo "inform: $INFORM_ROOT has no run.py; submit from the repository root or set INFORM_ROOT" >&2; exit 2; }
PY=${INFORM_PYTHON:-$INFORM_ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
# INFORM_NPROC=N: N processes on each node of the job (one per GPU; add trainer.devices=N),
# started by srun (one task per node) running slurm/node.sh, which starts torchrun; likewise
# for a job of several nodes (sbatch --nodes=M; trainer.num_nodes follows the job). Rank 0
# builds each artifact, the others join its training (inform/runtime/ranks.py).
# INFORM_SRUN_ARGS: extra srun options your cluster wants for the step (e.g. --gpus-per-task).
LAUNCH=("$PY")
if [ "${INFORM_NPROC:-1}" -gt 1 ] || [ "${SLURM_JOB_NUM_NODES:-1}" -gt 1 ]; then
  # shellcheck disable=SC2206  # INFORM_SRUN_ARGS is split into options on purpose
  LAUNCH=(srun "--ntasks=${SLURM_JOB_NUM_NODES:-1}" --ntasks-per-node=1 "--cpus-per-task=${SLURM_CPUS_PER_TASK:-1}"
          --kill-on-bad-exit=1 ${INFORM_SRUN_ARGS:-} bash "$INFORM_ROOT/slurm/node.sh")
fi
# the allocation wins over a thread count inherited from the submitting shell (`make` exports 2):
# more threads than allocated CPUs make every OpenMP loop spin against the other tasks
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}
# where run folders go (relative to the repository root unless absolute)
INFORM_OUTPUTS=${INFORM_OUTPUTS:-outputs}      # single jobs: $INFORM_OUTPUTS/slurm-<job>/
INFORM_MULTIRUN=${INFORM_MULTIRUN:-multirun}   # arrays: $INFORM_MULTIRUN/slurm-<job>/<task>/
export INFORM_OUTPUTS INFORM_MULTIRUN
export TOKENIZERS_PARALLELISM=false

# How this shell reaches the run (node.sh redefines all four for its torchrun):
# forward_signal SIG PID passes a preemption signal on: to Python itself, or to srun, which
# passes it to node.sh on every node, which passes it to its torchrun's workers (the ranks).
forward_signal() {
  kill "-$1" "$2" 2>/dev/null
}

# stop_run PID stops the run with TERM: Python itself; or srun's tasks (node.sh, torchrun)
# directly, with scancel, which without --batch/--full signals the job's steps and not this
# shell: srun answers a TERM of its own with SIGKILL to its tasks, and torchrun's workers, in
# sessions of their own, would be left running.
stop_run() {
  if [ "${LAUNCH[0]}" = srun ]; then scancel --signal=TERM "$SLURM_JOB_ID"; else kill -TERM "$1"; fi 2>/dev/null
}

# REQUEUE_GRACE_S: seconds a run that has asked for its requeue has to exit before stop_run
# (under srun, node.sh stops its own torchrun after INFORM_REQUEUE_GRACE_S; this shell waits
# 30 s more). RESEND_S: how often the signal is sent again until the run has asked (0: never).
LOG_TAG=inform-job
REQUEUE_GRACE_S=${INFORM_REQUEUE_GRACE_S:-60}
[ "${LAUNCH[0]}" = srun ] && REQUEUE_GRACE_S=$((REQUEUE_GRACE_S + 30))
RESEND_S=10

# After a preemption signal, until the run $1 exits: while it has not asked for its requeue,
# send it the signal $2 again every RESEND_S seconds (one that came while Python was still
# importing, or before torchrun had started its workers, was ignored); once it has asked (its
# checkpoint is saved), it has REQUEUE_GRACE_S seconds to exit before stop_run, so that a
# process stuck in its teardown does not turn a saved checkpoint into a time-out.
watch_preempted_run() {
  local waited=0 asked=0
  while sleep 1 && kill -0 "$1" 2>/dev/null; do
    if [ -s "${INFORM_REQUEUE_FILE:-}" ]; then
      asked=$((asked + 1))
      if [ "$asked" -ge "$REQUEUE_GRACE_S" ]; then
        echo "$LOG_TAG: the run did not exit ${asked}s after its checkpoint; stopping it"
        stop_run "$1"; return
      fi
    else
      waited=$((waited + 1))
      [ "$RESEND_S" -gt 0 ] && [ $((waited % RESEND_S)) -eq 0 ] && forward_signal "$2" "$1"
    fi
  done
}

# Run a command with USR1/USR2 ignored (so one that comes before inform's handler is installed
# in run.py does not kill it; srun sets its own handlers and forwards them, torchrun keeps
# them ignored) and pass the signals on: forward_signal, and the first one also starts
# watch_preempted_run; TERM: stop_run. Returns the command's status; PREEMPTED is 1 when a
# signal came.
run_passing_signals() {
  ( trap '' USR1 USR2; exec "$@" ) &
  local child=$! status=0
  PREEMPTED=""
  on_preempt_signal() {
    forward_signal "$1" "$child"
    [ -n "$PREEMPTED" ] || { watch_preempted_run "$child" "$1" & PREEMPTED=1; }
  }
  trap 'on_preempt_signal USR1' USR1
  trap 'on_preempt_signal USR2' USR2
  trap 'stop_run "$child"' TERM
  while true; do
    wait "$child"; status=$?
    # a trapped signal interrupts `wait` (status > 128) while the child still runs: wait again
    if [ "$status" -gt 128 ] && kill -0 "$child" 2>/dev/null; then continue; fi
    break
  done
  trap '' USR1 USR2  # a second signal now must not stop the caller (the batch shell requeues next)
  trap - TERM
  return "$status"
}

# Run a command with the preemption signals forwarded to it: `#SBATCH --signal=B:USR1@N`
# reaches only this batch shell, which passes it on (inform checkpoints at the end of the
# current step, writes the job id to $INFORM_REQUEUE_FILE and exits; then this shell
# requeues the job, with no process of the run left for Slurm to kill). Prints start/end
# times for the job's log.
run_forwarding_signals() {
  echo "inform-job start $(date +%s.%N) job=${SLURM_JOB_ID:-} array=${SLURM_ARRAY_JOB_ID:-}_${SLURM_ARRAY_TASK_ID:-} restart=${SLURM_RESTART_COUNT:-0}"
  # where rank 0 asks for the requeue: in the repository (slurm-logs/), which every node of the
  # job sees, as rank 0 need not run on the node of this shell; or INFORM_REQUEUE_DIR
  local dir=${INFORM_REQUEUE_DIR:-$INFORM_ROOT/slurm-logs}
  mkdir -p "$dir"
  export INFORM_REQUEUE_FILE="$dir/.requeue-${SLURM_JOB_ID:-$$}"
  rm -f "$INFORM_REQUEUE_FILE"
  local status=0
  run_passing_signals "$@" || status=$?
  echo "inform-job end $(date +%s.%N) status=$status"
  if [ -n "$PREEMPTED" ] && [ ! -s "$INFORM_REQUEUE_FILE" ]; then
    # preempted, and rank 0 (maybe on another node) has not asked yet as far as this node
    # sees: a network file system can be late to show the file; look again for 10 s
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      ls "$(dirname "$INFORM_REQUEUE_FILE")" >/dev/null 2>&1
      [ -s "$INFORM_REQUEUE_FILE" ] && break
      sleep 1
    done
  fi
  if [ -s "$INFORM_REQUEUE_FILE" ]; then
    local job; job=$(cat "$INFORM_REQUEUE_FILE"); rm -f "$INFORM_REQUEUE_FILE"
    echo "inform-job requeue $job"
    scontrol requeue "$job" || { echo "inform-job: scontrol requeue $job failed (the checkpoint stays in the run folder)" >&2; return 1; }
  fi
  return "$status"
}

# The sbatch options of the running job, to give the jobs it submits the same resources
# (so `sbatch -p gpu --gres=gpu:1 slurm/sweep.sh ...` reaches the array tasks too).
inherited_sbatch_options() {
  local info; info=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null) || return 0
  local field
  for field in Partition TimeLimit QOS Account; do
    local value; value=$(echo "$info" | grep -o "\b$field=[^ ]*" | head -n1 | cut -d= -f2)
    [ -n "$value" ] && [ "$value" != "(null)" ] && case $field in
      Partition) echo "--partition=$value" ;; TimeLimit) echo "--time=$value" ;;
      QOS) echo "--qos=$value" ;; Account) echo "--account=$value" ;;
    esac
  done
  [ -n "${SLURM_CPUS_PER_TASK:-}" ] && echo "--cpus-per-task=$SLURM_CPUS_PER_TASK"
  [ -n "${SLURM_MEM_PER_NODE:-}" ] && echo "--mem=${SLURM_MEM_PER_NODE}M"
  local gres; gres=$(echo "$info" | grep -o "TresPerNode=[^ ]*" | cut -d= -f2-)
  [ -n "$gres" ] && [ "$gres" != "(null)" ] && echo "--gres=${gres#gres/}"
  return 0
}
