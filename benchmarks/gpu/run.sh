#!/usr/bin/env bash
# Issue 7's GPU measurements in ONE command, for the lent GPU machine (one H100 or H200, no
# network, 10 minutes a command). From the repo root, after `bash benchmarks/gpu/fetch_wheels.sh`
# here, the device call is: carry ["wheels"], timeout_s 600, command `bash benchmarks/gpu/run.sh`.
#
#   bash benchmarks/gpu/run.sh                    # every step, in this order, within the budget
#   bash benchmarks/gpu/run.sh ppo zero3          # only these steps
#   bash benchmarks/gpu/run.sh --tiny             # the same steps at tiny scale on the CPU (tests)
#
# Steps (each its own process, under `timeout`, a JSON result each; a failed or timed-out step
# writes its error into its JSON and the next step runs):
#   rm_bf16          gpu_rm: pythia-1.4b RM, 16 pairs x 512 tokens, bf16 weights ("bf16-true"),
#                    inform's RewardModule under Lightning vs a bare loop: tokens/s, MFU, memory
#   ppo              gpu_ppo: one PPO iteration (2 run, the 2nd is steady state): 1.4B policy +
#                    1.4B critic (fp32, bf16-mixed, gradient checkpointing), 1.4B reference and
#                    410M RM in bf16; 64 prompts x (128 + 128 new tokens), 4 epochs x 2 minibatches
#   zero3            gpu_zero3: pythia-6.9b RM, 8 pairs x 512 (4 with offload), ZeRO-3, bf16-mixed, gradient
#                    checkpointing. GPU >= 120 GiB (H200): no offload (fp32 master weights, fused
#                    torch AdamW). Else (H100): optimizer offloaded to the CPU with bf16 master
#                    weights and Adam moments (DeepSpeedCPUAdam, JIT-built here): fp32 masters
#                    on the host need ~120 GB of its 128 GiB (killed before). ZERO3_MODE=offload
#                    or nooffload overrides.
#   rm_fp32          gpu_rm, fp32 weights + bf16 autocast ("bf16-mixed"), as inform's stages train
#   ppo_static       gpu_ppo as `ppo` with ppo.kv_cache=static: transformers compiles the decoding
#                    step (~16 s, in the 1st iteration); the 2nd iteration's generate_s against ppo's
#   rm_bf16_compile  gpu_rm bf16 with torch.compile on the backbone, no bare loop (one compile)
# Results: $OUT (the device tool's folder; default benchmarks/out/gpu): <step>.json, run.log
# (everything printed), summary.md (the figures as table rows for benchmarks/RESULTS.md).
set -uo pipefail
cd "$(dirname "$0")/../.."

TINY=0
STEPS=()
for a in "$@"; do
  case "$a" in
    --tiny) TINY=1 ;;
    rm_bf16|ppo|zero3|rm_fp32|ppo_static|rm_bf16_compile) STEPS+=("$a") ;;
    *) echo "run.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
if [ ${#STEPS[@]} -eq 0 ]; then
  STEPS=(rm_bf16 ppo zero3 rm_fp32 ppo_static rm_bf16_compile)
  [ "$TINY" = 1 ] && STEPS=(rm_bf16 ppo zero3 rm_fp32 ppo_static)  # compiling on 2 CPU cores takes minutes (static cache: no compile on the CPU)
fi
OUT=${OUT:-benchmarks/out/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET=${GPU_BENCH_BUDGET_S:-560}  # the device tool stops a command at 600 s
START=$SECONDS
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}  # DeepSpeed's op builder cannot parse "9.0a"

main() {
echo "== run.sh $(date -u +%FT%TZ): steps ${STEPS[*]}, budget ${BUDGET}s, out $OUT"
if [ "$TINY" = 0 ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"
  echo "cpus $(nproc), $(free -g | awk '/Mem:/{print $2}') GiB host memory; $("$PY" -V 2>&1)"
  for t in g++ c++ ninja nvcc; do printf '%s: %s\n' "$t" "$(command -v $t || echo missing)"; done
  if ls wheels/*.whl >/dev/null 2>&1; then
    # --target + PYTHONPATH: nothing of the image's own site-packages is changed
    PIP=("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site)
    if ! "${PIP[@]}" wheels/*.whl; then  # one wheel for another Python stops them all: then one by one
      for w in wheels/*.whl; do "${PIP[@]}" "$w" || echo "!! not installed: $w"; done
    fi
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "!! no wheels/ (run benchmarks/gpu/fetch_wheels.sh here and carry [\"wheels\"]): DeepSpeed steps will fail"
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
[ "$TINY" = 0 ] && "$PY" - <<'EOF'
import importlib
for m in ("torch", "transformers", "lightning", "deepspeed", "datasets", "omegaconf", "pydantic"):
    try:
        mod = importlib.import_module(m)
        print(f"{m} {getattr(mod, '__version__', '?')}")
    except Exception as e:
        print(f"{m}: NOT IMPORTABLE ({type(e).__name__}: {e})")
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF

GPU_GIB=0
[ "$TINY" = 0 ] && GPU_GIB=$("$PY" -c "import torch; print(int(torch.cuda.get_device_properties(0).total_memory / 2**30) if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
if [ "$TINY" = 0 ] && [ "$GPU_GIB" = 0 ]; then
  echo "!! no CUDA GPU here: the real sizes would build 1.4B-7B models on the CPU. --tiny runs the CPU smoke test."
  return 1
fi
MODE=${ZERO3_MODE:-$([ "$GPU_GIB" -ge 120 ] || [ "$TINY" = 1 ] && echo nooffload || echo offload)}
SMOKE=()
[ "$TINY" = 1 ] && SMOKE=(--tiny --device cpu)

STATUS=()
step() {  # step NAME CAP_SECONDS MODULE ARGS...
  local name=$1 cap=$2; shift 2
  local left=$((BUDGET - (SECONDS - START)))
  local t=$((cap < left - 10 ? cap : left - 10))
  if [ "$t" -lt 40 ]; then
    echo "== $name: skipped, ${left}s of the budget left"; STATUS+=("$name: skipped"); return
  fi
  echo "== $name (timeout ${t}s): $PY -m $* ${SMOKE[*]}"
  local t0=$SECONDS
  timeout -s INT -k 20 "$t" "$PY" -m "$@" "${SMOKE[@]}" --out "$OUT/$name.json"
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
  STATUS+=("$name: exit $rc, $((SECONDS - t0)) s")
}

for s in "${STEPS[@]}"; do
  case "$s" in
    rm_bf16) step rm_bf16 120 benchmarks.gpu_rm --weights bf16 --pairs 16 ;;
    ppo) step ppo 150 benchmarks.gpu_ppo --grad-ckpt ;;
    zero3)
      if [ "$MODE" = nooffload ]; then
        step zero3 200 benchmarks.gpu_zero3 --pairs 8 --steps 8  # H200 2026-11-26: 62 s in all
      else
        step zero3 300 benchmarks.gpu_zero3 --offload-optimizer --master bf16 --steps 4  # 6 s a step (host Adam), 52 s setup
      fi ;;
    rm_fp32) step rm_fp32 100 benchmarks.gpu_rm --weights fp32 --pairs 16 ;;
    ppo_static) step ppo_static 150 benchmarks.gpu_ppo --grad-ckpt --kv-cache static ;;
    rm_bf16_compile) step rm_bf16_compile 150 benchmarks.gpu_rm --weights bf16 --pairs 16 --compile --no-baseline ;;
  esac
done

echo "== done in $((SECONDS - START)) s:"
printf '   %s\n' "${STATUS[@]}"
"$PY" benchmarks/gpu/summarize.py "$OUT" | tee "$OUT/summary.md"
}

main 2>&1 | tee -a "$OUT/run.log"  # everything printed also lands in run.log
