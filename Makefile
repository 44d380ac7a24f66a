# The two commands of the README: `make run` and `make test`.
# Each creates .venv with pip when it is missing, then does its job.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 2
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test venv bench clean experiment-detectors experiment-rm-accuracy experiment-methods experiment-sensitivity experiment-csi-traces experiments

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

# The paper experiments at tiny scale (experiments/README.md): each trains its sweep, then its
# analysis script reads the runs back and writes the PNG and results.md. Add EXPERIMENT_ARGS=--slurm
# to submit the sweeps as job arrays instead.
experiment-methods: venv
	bash experiments/methods/run.sh $(EXPERIMENT_ARGS)

experiment-sensitivity: venv
	bash experiments/sensitivity/run.sh $(EXPERIMENT_ARGS)

experiment-csi-traces: venv
	bash experiments/csi_traces/run.sh $(EXPERIMENT_ARGS)

experiments: experiment-csi-traces experiment-sensitivity experiment-methods experiment-rm-accuracy experiment-detectors

# RM accuracy on HH / AlpacaFarm / TL;DR / synthetic. Default: the tiny RMs, here on CPU;
# RM_ACCURACY_ARGS= (empty): Pythia-410m RMs on one GPU; RM_ACCURACY_ARGS=--slurm: as a job array
RM_ACCURACY_ARGS ?= --tiny
experiment-rm-accuracy: venv
	bash experiments/rm_accuracy/run.sh $(RM_ACCURACY_ARGS)
