# The two commands of the README: `make run` and `make test`.
# Each creates .venv with pip when it is missing, then does its job.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 2
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test venv bench clean experiment-detectors

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) run.py $(ARGS)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) -m benchmarks.run_all

clean:
	rm -rf outputs multirun artifacts wandb lightning_logs

experiment-detectors: venv
	bash experiments/detectors/run.sh
