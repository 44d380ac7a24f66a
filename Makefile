# The two commands of the README: `make run` and `make test`.
# Each creates .venv with pip when it is missing, then does its job.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 2
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test venv bench clean experiment-detectors experiment-rm-accuracy experiment-methods experiment-methods-compare \
        experiment-sensitivity experiment-csi-traces experiments

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

# The paper experiments (experiments/README.md). Each grid (methods x knobs x seeds) is a file
# of conf/grid/: Hydra's sweeper reads its hydra.sweeper.params, and its hydra.sweep.dir is the
# folder the analysis reads. A target runs its grids here, `run.py -m grid=<name>`, one run
# after another, then its analysis script (PNG and results.md). Variables:
#   EXPERIMENT_ARGS  Hydra overrides for every grid of the target; one for a key the grid has
#                    replaces the grid's entry (EXPERIMENT_ARGS="seed=0,1,2": 3 seeds a point).
#                    With --slurm among them, each grid goes to Slurm as a job array instead,
#                    `sbatch $(SBATCH_ARGS) slurm/sweep.sh grid=<name> ...` (the same points),
#                    and the target prints the analysis command for when the arrays are done.
#   RUNS             the sweep folder instead of the grid files' (RUNS/<grid> for the
#                    experiments of several grids); the analysis reads it
#   RESULTS          where the analysis writes (default: the experiment's folder)
#   ANALYZE_ARGS     more arguments for the analysis script
comma := ,
GRID_OVERRIDES = $(filter-out --slurm --tiny,$(EXPERIMENT_FLAGS) $(EXPERIMENT_ARGS))
SLURM_GRIDS = $(filter --slurm,$(EXPERIMENT_FLAGS) $(EXPERIMENT_ARGS))
# $(call run_grid,<grid>,<its folder under RUNS>,<overrides before EXPERIMENT_ARGS>)
run_grid = $(if $(SLURM_GRIDS),sbatch $(SBATCH_ARGS) slurm/sweep.sh,$(PY) run.py -m) grid=$(1) \
  $(if $(RUNS),hydra.sweep.dir=$(RUNS)$(2)) $(3) $(GRID_OVERRIDES)
# $(call analyze,<script>,<what it reads>,<arguments>): here, or printed for when the arrays are done
analyze = $(if $(SLURM_GRIDS),@echo "when the arrays are done:") $(PY) experiments/$(1) $(2) \
  --out $(or $(RESULTS),$(dir experiments/$(1))) $(3) $(ANALYZE_ARGS)

experiments: experiment-csi-traces experiment-sensitivity experiment-methods experiment-rm-accuracy experiment-detectors

# (a) grids methods/objectives, methods/ensembles, methods/bt_kl: one seed a point, sizes x label noise
experiment-methods: venv
	$(call run_grid,methods/objectives,/objectives)
	$(call run_grid,methods/ensembles,/ensembles)
	$(call run_grid,methods/bt_kl,/bt_kl)
	$(call analyze,methods/analyze.py,grid $(or $(RUNS),experiments/methods/runs))

# (a) the comparison at matched KL: grid methods/compare (7 methods x 10 seeds), a chunk of seeds
# (SEEDS=0,1,2,3,4) in a folder of its own, then the analysis of every chunk; it writes the
# chunk's runs as experiments/methods/compare/tidy/seeds_<SEEDS>.csv, the file to commit
SEEDS ?= 0,1,2,3,4,5,6,7,8,9
SEEDS_DIR = $(or $(RUNS),experiments/methods/runs/compare)/seeds_$(subst $(comma),-,$(SEEDS))
experiment-methods-compare: venv
	$(if $(SLURM_GRIDS),sbatch $(SBATCH_ARGS) slurm/sweep.sh,$(PY) run.py -m) grid=methods/compare hydra.sweep.dir=$(SEEDS_DIR) seed=$(SEEDS) $(GRID_OVERRIDES)
	$(if $(SLURM_GRIDS),@echo "when the arrays are done:") $(PY) experiments/methods/analyze.py compare $(SEEDS_DIR) --out $(or $(RESULTS),experiments/methods/compare) $(ANALYZE_ARGS)

# (b) grid sensitivity
experiment-sensitivity: venv
	$(call run_grid,sensitivity)
	$(call analyze,sensitivity/analyze.py,$(or $(RUNS),experiments/sensitivity/runs))

# (c) grid csi_traces
experiment-csi-traces: venv
	$(call run_grid,csi_traces)
	$(call analyze,csi_traces/analyze.py,$(or $(RUNS),experiments/csi_traces/runs))

# detectors and mitigations: grids detectors/detect, detectors/ibl, detectors/eppo
experiment-detectors: venv
	$(call run_grid,detectors/detect,/detect)
	$(call run_grid,detectors/ibl,/ibl)
	$(call run_grid,detectors/eppo,/eppo)
	$(call analyze,detectors/analyze.py,$(or $(RUNS),experiments/detectors/runs))

# (d) RM accuracy on HH / AlpacaFarm / TL;DR / synthetic, then experiments/rm_accuracy/evaluate.py.
# RM_ACCURACY_ARGS=--tiny (default): grid rm_accuracy/tiny, the smoke RMs, here on CPU;
# RM_ACCURACY_ARGS= (empty): grid rm_accuracy/gpu, Pythia-410m RMs on one GPU; add --slurm (here
# or in EXPERIMENT_ARGS) for a job array, with SBATCH_GPU_ARGS in the GPU mode
RM_ACCURACY_ARGS ?= --tiny
SBATCH_GPU_ARGS ?= --gres=gpu:1 --cpus-per-task=8 --mem=64G --time=12:00:00
RM_ACCURACY_MODE = $(if $(filter --tiny,$(RM_ACCURACY_ARGS)),tiny,gpu)
RM_ACCURACY_EVAL_tiny = --limit 500 --device cpu --stages rm,gold
RM_ACCURACY_EVAL_gpu = --limit 2000 --dtype bfloat16 --batch-size 32
experiment-rm-accuracy: EXPERIMENT_FLAGS = $(RM_ACCURACY_ARGS)
experiment-rm-accuracy: SBATCH_ARGS += $(if $(filter gpu,$(RM_ACCURACY_MODE)),$(SBATCH_GPU_ARGS))
experiment-rm-accuracy: venv
	$(call run_grid,rm_accuracy/$(RM_ACCURACY_MODE),/sweep,$(if $(RUNS),paths.artifacts=$(RUNS)/artifacts))
	$(call analyze,rm_accuracy/evaluate.py,$(or $(RUNS),experiments/rm_accuracy/runs)/artifacts,$(RM_ACCURACY_EVAL_$(RM_ACCURACY_MODE)))
