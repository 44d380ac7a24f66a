"""The experiment grids of conf/grid/: each file is Hydra's sweeper params (methods x knobs x
seeds) and the sweep folder its analysis reads. `python run.py -m grid=<name>` runs one here,
`sbatch slurm/sweep.sh grid=<name>` as a Slurm job array; slurm/grid.py expands it for the
array, and must give the jobs of `run.py -m`, in the same order. Nothing here trains: the runs
use `explain=true` (print the stage plan, build nothing)."""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.conftest import ROOT, run_inform

CONF = ROOT / "conf"
GRIDS = sorted(p.relative_to(CONF / "grid").with_suffix("").as_posix() for p in (CONF / "grid").rglob("*.yaml"))

# What each grid was as a bash string in experiments/*/run.sh before it became a file (with the
# scripts' defaults for SEEDS, SIZES, NOISE, ...; run.sh added logger=wandb), and its folder.
RUN_SH = {
    "methods/objectives": ("experiments/methods/runs/objectives",
                           "objective=bt,ib,bsr model@reward=tiny-small,tiny,tiny-large label_noise=0.0,0.25 seed=0 name=methods"),
    "methods/ensembles": ("experiments/methods/runs/ensembles",
                          "objective=bt ensemble.members=3 ensemble.combine=uwo,warm model@reward=tiny-small,tiny,tiny-large "
                          "label_noise=0.0,0.25 seed=0 name=methods"),
    "methods/bt_kl": ("experiments/methods/runs/bt_kl",
                      "objective=bt kl_coef=0.2 model@reward=tiny-small,tiny,tiny-large label_noise=0.0,0.25 seed=0 name=methods"),
    "methods/compare": ("experiments/methods/runs/compare",  # new with issue 19: no run.sh before it
                        "seed=range(0,10) method=bt,bt_kl,ib,ib_low_beta,bsr,uwo,warm name=methods"),
    # issue 19 raised the seeds: 5 a point in sensitivity (run.sh had 1), 10 in the detector grids (run.sh: 3)
    "sensitivity": ("experiments/sensitivity/runs",
                    "objective=ib beta=0.1,0.01,0.001 latent_dim=32,64,128 seed=range(0,5) name=sensitivity"),
    "csi_traces": ("experiments/csi_traces/runs", "objective=bt,ib seed=0,1,2 detect=[csi] name=csi_traces"),
    "detectors/detect": ("experiments/detectors/runs/detect", "objective=bt,ib seed=range(0,10) name=detectors"),
    "detectors/ibl": ("experiments/detectors/runs/ibl", "ibl_coef=0.01,0.05,0.1 seed=range(0,10) name=mitigations"),
    "detectors/eppo": ("experiments/detectors/runs/eppo", "energy_coef=0.5,1.0,2.0 seed=range(0,10) name=mitigations"),
    "rm_accuracy/tiny": ("experiments/rm_accuracy/runs/sweep",
                         "stage=rm objective=bt,ib,bsr experiment=smoke seed=0 name=rm-accuracy "
                         "paths.artifacts=experiments/rm_accuracy/runs/artifacts"),
    "rm_accuracy/gpu": ("experiments/rm_accuracy/runs/sweep",
                        "stage=rm data=hh_rlhf rm.data=human rm.init=base objective=bt,ib,bsr model@reward=pythia-410m "
                        "trainer=gpu rm.epochs=1 rm.batch_size=16 rm.lr=1.0e-5 rm.warmup_steps=100 rm.val_size=512 "
                        "reward.gradient_checkpointing=true seed=0 name=rm-accuracy "
                        "paths.artifacts=experiments/rm_accuracy/runs/artifacts"),
}
SIZES = {"methods/compare": 70, "methods/objectives": 18, "methods/ensembles": 12, "methods/bt_kl": 6, "sensitivity": 45, "csi_traces": 6,
         "detectors/detect": 20, "detectors/ibl": 30, "detectors/eppo": 30, "rm_accuracy/tiny": 3, "rm_accuracy/gpu": 3}


def load_grid_py():
    spec = importlib.util.spec_from_file_location("slurm_grid", ROOT / "slurm" / "grid.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def grid():
    """slurm/grid.py's Grid, in-process: grid(*overrides).jobs, .sweep_dir(), .check()."""
    module = load_grid_py()
    yield module.Grid
    GlobalHydra.instance().clear()


def expand(overrides: str) -> list[list[str]]:
    """Hydra's BasicSweeper on a plain command line (what run.sh's string gave)."""
    parsed = OverridesParser.create().parse_overrides(shlex.split(overrides))
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def grid_py(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / "slurm" / "grid.py"), *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def job_overrides(sweep_dir: Path) -> list[list[str]]:
    """Each job's .hydra/overrides.yaml of a sweep folder, in job order."""
    jobs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    assert [p.name for p in jobs] == [str(i) for i in range(len(jobs))]
    return [yaml.safe_load((p / ".hydra" / "overrides.yaml").read_text()) for p in jobs]


def test_each_grid_file_is_one_of_the_experiments_sweeps():
    assert GRIDS == sorted(RUN_SH)


@pytest.mark.parametrize("name", GRIDS)
def test_a_grid_file_holds_its_sweep_folder_and_its_params_only(name):
    """Everything a job gets is a sweeper param, so it is in the job's overrides.yaml (and a
    command-line override can replace it); nothing else is merged into the config."""
    text = (CONF / "grid" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    node = yaml.safe_load(text)
    assert list(node) == ["hydra"] and sorted(node["hydra"]) == ["sweep", "sweeper"]
    assert list(node["hydra"]["sweep"]) == ["dir"] and list(node["hydra"]["sweeper"]) == ["params"]
    assert node["hydra"]["sweep"]["dir"] == RUN_SH[name][0]


@pytest.mark.parametrize("name", GRIDS)
def test_a_grid_expands_to_the_jobs_of_its_former_run_sh(grid, name):
    folder, overrides = RUN_SH[name]
    g = grid([f"grid={name}"])
    assert g.jobs == [job + [f"grid={name}"] for job in expand(f"{overrides} logger=wandb")]
    assert len(g.jobs) == SIZES[name]
    assert g.sweep_dir() == folder


def test_a_command_line_override_replaces_the_grid_entry_in_its_place(grid):
    g = grid(["grid=methods/objectives", "seed=0,1,2"])  # the grid's seed: 0
    assert len(g.jobs) == 54
    assert all([o for o in job if o.startswith("seed=")] == [job[3]] for job in g.jobs)  # one seed, the grid's position
    assert [job[3] for job in g.jobs[:6]] == ["seed=0", "seed=1", "seed=2"] * 2
    g = grid(["grid=methods/bt_kl", "kl_coef=0.5", "label_noise=0.25"])
    assert len(g.jobs) == 3 and all(job[1] == "kl_coef=0.5" and job[3] == "label_noise=0.25" for job in g.jobs)
    g = grid(["grid=sensitivity", "hydra.sweep.dir=/elsewhere"])
    assert g.sweep_dir() == "/elsewhere" and len(g.jobs) == 45
    assert grid(["beta=0.1,0.01"]).sweep_dir() == ""  # no grid: sweep.sh's multirun/slurm-<job>/


def hydra_sweeper_jobs(args: list[str], tmp_path: Path) -> list[list[str]]:
    """The jobs Hydra's own BasicSweeper hands its launcher under `python run.py -m <args>`:
    the config composed as Hydra.multirun does, the sweeper instantiated from it, sweep() on
    hydra.overrides.task; only the launcher is a recorder."""
    from hydra import initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.plugins import Plugins
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.types import HydraContext, RunMode

    class Recorder:
        def __init__(self):
            self.jobs: list[list[str]] = []

        def launch(self, job_overrides, initial_job_idx):
            self.jobs += [list(j) for j in job_overrides]
            return [JobReturn(overrides=list(j), status=JobStatus.COMPLETED) for j in job_overrides]

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            gh = GlobalHydra.instance()
            cfg = gh.hydra.compose_config("config", overrides=args, run_mode=RunMode.MULTIRUN, with_log_configuration=False)
            cfg.hydra.sweep.dir = str(tmp_path)  # where sweep() writes multirun.yaml
            sweeper = Plugins.instance().instantiate_sweeper(
                config=cfg, hydra_context=HydraContext(config_loader=gh.config_loader(), callbacks=Callbacks(cfg)),
                task_function=lambda _: None)
            sweeper.launcher = recorder = Recorder()
            sweeper.validate_batch_is_legal = lambda batch: None  # composes each job: slow, and no part of the order
            sweeper.sweep(arguments=list(cfg.hydra.overrides.task))
            return recorder.jobs
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.parametrize("args", [[f"grid={name}"] for name in GRIDS] + [
    ["grid=methods/objectives", "seed=0,1,2"],                       # a sweep replaces a grid entry
    ["seed=7", "grid=sensitivity", "beta=0.5", "hydra.sweep.dir=/x"],  # before the grid, a Hydra override
    ["grid=csi_traces", "objective=glob(b*)", "ppo.steps=range(4,12,4)"],  # glob over a group, range
    ["grid=rm_accuracy/tiny", "experiment=inform_simulated"],
    ["beta=0.1,0.01", "latent_dim=64,128"],                           # no grid: the command line alone
], ids=lambda a: " ".join(a))
def test_grid_py_gives_the_jobs_of_hydras_basic_sweeper_in_its_order(grid, args, tmp_path):
    hydra_jobs = hydra_sweeper_jobs(args, tmp_path)
    assert grid(args).jobs == hydra_jobs and len(hydra_jobs) > 1


def test_run_py_multirun_runs_the_jobs_that_slurm_grid_py_gives(grid, tmp_path):
    """`python run.py -m grid=<name> ...` (explain=true: the stage plan of each job, no
    training), in an empty folder: the jobs land in the grid's own sweep folder, each job's
    .hydra/overrides.yaml is what slurm/grid.py gives the Slurm array task of the same index
    (its command line once, `count` and `point`; the same Grid in-process for `list`).
    The grid as it is: the Slurm test below (rm_accuracy/tiny)."""
    args = ["grid=methods/objectives", "model@reward=tiny", "seed=0,1"]  # a sweep over seeds replaces the grid's seed 0
    name = args[0].removeprefix("grid=")
    args = [*args, "explain=true", f"paths.artifacts={tmp_path}/artifacts"]
    proc = run_inform("-m", *args, cwd=tmp_path, timeout=600)
    local = job_overrides(tmp_path / RUN_SH[name][0])
    count = len(grid(args).jobs)
    assert count == len(local) == 12
    assert proc.stdout.count(" to build\n") == count  # each job printed its stage plan
    assert [job + grid(args).hydra_overrides for job in grid(args).jobs] == local
    assert grid_py("point", str(count - 1), *args).stdout.splitlines() == local[-1]
    assert not (tmp_path / "artifacts").exists()  # nothing was built
    if "seed=0,1" in args:  # the command line's seeds replaced the grid's seed 0
        assert [[o for o in job if o.startswith("seed=")] for job in local[:4]] == [["seed=0"], ["seed=1"]] * 2


BAD_GRIDS = {  # a typo in a grid file, and where it is caught
    "param": "hydra:\n  sweeper:\n    params:\n      betta: 0.1,0.01\n      seed: 0,1\n",
    "top_level": "latent_dimm: 64\nhydra:\n  sweeper:\n    params:\n      seed: 0,1\n",
    "hydra_key": "hydra:\n  sweeper:\n    parms:\n      seed: 0,1\n",
}


@pytest.mark.parametrize("kind", sorted(BAD_GRIDS))
def test_an_unknown_key_in_a_grid_file_fails_naming_the_key(kind, tmp_path):
    """A param for a key the config lacks: Hydra's BasicSweeper composes every job before it
    launches one, so `run.py -m` stops with Hydra's error and no job runs; grid.py count (the
    Slurm launcher) fails the same way before it submits an array. A typo under hydra: the
    composition of the sweep itself fails, on both sides. A key outside hydra: (which the grids
    here do not have) composes; the project's validate() names it when each job starts, and
    every job of the sweep fails so (Hydra runs the whole batch, then reports)."""
    (tmp_path / "conf" / "grid").mkdir(parents=True)
    (tmp_path / "conf" / "grid" / "bad.yaml").write_text("# @package _global_\n" + BAD_GRIDS[kind])
    args = ["grid=bad", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "explain=true", f"paths.artifacts={tmp_path}/artifacts"]
    local = run_inform("-m", *args, f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path, check=False)
    count = grid_py("count", *args, check=False)
    assert local.returncode != 0
    out = local.stdout + local.stderr
    if kind == "param":
        assert "Could not override 'betta'" in out and not (tmp_path / "sweep" / "0").exists()
        assert count.returncode != 0 and "Could not override 'betta'" in count.stderr and "betta=0.1 seed=0" in count.stderr
    elif kind == "hydra_key":
        assert "Key 'parms' not in 'BasicSweeperConf'" in out and not (tmp_path / "sweep").exists()
        assert count.returncode != 0 and "Key 'parms' not in 'BasicSweeperConf'" in count.stderr
    else:
        assert "latent_dimm: Key 'latent_dimm' not in 'Schema'" in out
        assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.name.isdigit()) == ["0", "1"]
        assert count.returncode == 0 and count.stdout.strip() == "2"  # composes: each array task's validate() fails


def wait_for(jobs: list[str], timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(jobs)], capture_output=True, text=True).stdout.split():
            return
        time.sleep(2)
    raise AssertionError(f"jobs {jobs} still queued after {timeout}s")


@pytest.mark.slurm
def test_sweep_sh_runs_a_grid_as_the_jobs_of_run_py_m(tmp_path):
    """`sbatch slurm/sweep.sh grid=rm_accuracy/tiny explain=true`: array task i runs run.py -m's
    job i (its overrides.yaml, plus the W&B group sweep.sh adds), in the folder
    hydra.sweep.dir names."""
    args = ["grid=rm_accuracy/tiny", "explain=true", f"paths.artifacts={tmp_path}/artifacts"]
    run_inform("-m", *args, f"hydra.sweep.dir={tmp_path}/local", cwd=tmp_path)
    local = job_overrides(tmp_path / "local")
    sweep = tmp_path / "slurm"
    env = {k: v for k, v in os.environ.items() if k != "INFORM_SWEEP_DIR"}
    out = subprocess.run(["sbatch", "--parsable", f"--output={tmp_path}/launcher-%j.out", "slurm/sweep.sh", *args,
                          f"hydra.sweep.dir={sweep}"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    launcher = out.stdout.strip()
    wait_for([launcher], 180)
    log = (tmp_path / f"launcher-{launcher}.out").read_text()
    assert re.search(rf"inform sweep: 3 points -> array job \d+; runs and logs in {re.escape(str(sweep))}", log), log
    array = (sweep / "array_job_id").read_text().strip()
    wait_for([array], 600)
    tasks = job_overrides(sweep)
    assert [t[:-1] for t in tasks] == local and {t[-1] for t in tasks} == {"group=slurm"}
    for i in range(3):
        assert "stage=rm: " in (sweep / "logs" / f"inform-sweep_{array}_{i}.out").read_text()
    assert not (tmp_path / "artifacts").exists()
