#!/usr/bin/env bash
# Run HERE (where PyPI is reachable), before a GPU session: puts into wheels/ (git-ignored) the
# wheels that the GPU machine's image lacks, for its Python (3.12, x86-64 manylinux). The GPU
# machine reaches no registry; benchmarks/gpu/run.sh installs these there with --no-index.
#
#   bash benchmarks/gpu/fetch_wheels.sh                       # what the GPU benchmarks need (~20 MB)
#   bash benchmarks/gpu/fetch_wheels.sh --full                # + wandb, hdbscan, submitit: the whole pipeline
#   bash benchmarks/gpu/fetch_wheels.sh --python-version 3.11 --platform manylinux_2_35_x86_64
#
# The image has torch 2.11 (cu130), transformers, lightning, numpy, pyarrow, pandas, scipy,
# scikit-learn, tokenizers, ninja and a compiler (/work/.library/device/KINDS.md); it lacks
# DeepSpeed and its pydantic/hjson, datasets (+ dill, multiprocess), omegaconf/hydra, and its
# transformers (5.17) is older than the one the tests run (5.24).
# Versions are the set this project's .venv runs (known to work together). Each is fetched
# with --no-deps: a full resolve would pull torch and pyarrow again.
# DeepSpeed is on PyPI as a source archive only (and `pip download --only-binary=:all:
# deepspeed` silently picks an ancient 0.3.1.dev5 wheel): it is built here into a
# pure-Python wheel without ops (DS_BUILD_OPS=0); DeepSpeed JIT-compiles the ops it needs
# on the GPU machine. antlr4-python3-runtime 4.9.3 (what omegaconf 2.3 wants) is a source
# archive too.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PYTHON:-.venv/bin/python}
command -v "$PY" >/dev/null || PY=python3  # any Python with pip and setuptools: it only downloads and builds
PYVER=3.12
DEST=wheels
FULL=0
PLATFORMS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYVER=$2; shift 2 ;;
    --platform) PLATFORMS+=("$2"); shift 2 ;;
    --dest) DEST=$2; shift 2 ;;
    --full) FULL=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "fetch_wheels.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ ${#PLATFORMS[@]} -eq 0 ]; then
  PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64
             manylinux2014_x86_64 manylinux1_x86_64)
fi
PLAT_ARGS=()
for p in "${PLATFORMS[@]}"; do PLAT_ARGS+=(--platform "$p"); done

PKGS=(
  hjson==3.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0                      # DeepSpeed's config (pydantic 2.14 wants typing-extensions >= 4.16)
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19  # imported by inform.data
  omegaconf==2.3.1 hydra-core==1.3.8             # the presets and the pipeline's config
  transformers==5.24.0 regex==2026.11.19         # the image has 5.17: the GPU runs the version the tests run
)                                                # (5.24 checks regex >= 2025.10.22 at import)
if [ "$FULL" = 1 ]; then
  PKGS+=(
    wandb==0.31.0 cwevals==0.0.1b1 distro==1.9.0 sniffio==1.3.1 platformdirs==4.14.8 googleapis-common-protos==1.76.0
    opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-proto==1.45.2
    opentelemetry-semantic-conventions==0.66b2 opentelemetry-exporter-http-transport==0.66b2
    opentelemetry-exporter-otlp-common==0.66b2 opentelemetry-exporter-otlp-proto-common==1.45.2
    opentelemetry-exporter-otlp-proto-http==1.45.2
    hdbscan==0.8.44 submitit==1.5.4 hydra-submitit-launcher==1.2.0
  )
fi

mkdir -p "$DEST"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${PLAT_ARGS[@]}" -d "$DEST" "${PKGS[@]}"
# Source-only on PyPI: built here into pure-Python wheels (py3-none-any), valid on any 3.x.
DS_BUILD_OPS=0 "$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$DEST" \
  antlr4-python3-runtime==4.9.3 deepspeed==0.19.8

echo "fetch_wheels.sh: $(ls "$DEST"/*.whl | wc -l) wheels in $DEST/ ($(du -sh "$DEST" | cut -f1)):"
ls "$DEST"
echo "Device call: carry [\"wheels\"], timeout_s 600, command: bash benchmarks/gpu/run.sh (run.sh reads wheels/)"
