"""Shared test set-up: offline, few threads, the real entry point as a subprocess."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may reach a hub in the tests
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["WANDB_SILENT"] = "true"
# audit=true in every run the suite starts (conf/config.yaml reads INFORM_AUDIT): a stage that
# reads a config key its hash does not cover fails its build (inform/pipeline/audit.py), so
# every slow test also checks the stage table on its own configuration
os.environ["INFORM_AUDIT"] = "true"
# the suite is no Slurm job, even when pytest runs inside one: a run it starts must never
# requeue (or take the identity of) the surrounding job; SLURM_CONF still finds the cluster
for _var in [v for v in os.environ if v.startswith("SLURM_") and v != "SLURM_CONF"] + ["INFORM_REQUEUE_FILE"]:
    os.environ.pop(_var, None)


def slurm_available() -> bool:
    return shutil.which("sbatch") is not None and subprocess.run(["sinfo"], capture_output=True).returncode == 0


def pytest_collection_modifyitems(config, items):
    """`slurm` tests skip when Slurm is absent, unless INFORM_REQUIRE_SLURM=1 (then they fail)."""
    if os.environ.get("INFORM_REQUIRE_SLURM") == "1" or slurm_available():
        return
    skip = pytest.mark.skip(reason="no Slurm here (bash ../shared/slurm/start-slurm.sh); INFORM_REQUIRE_SLURM unset")
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)


def run_inform(*overrides: str, cwd: Path, check: bool = True, timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python run.py <overrides>` in `cwd` (its artifacts/, outputs/, multirun/ land there)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *overrides], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env=full_env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"run.py {' '.join(overrides)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture
def compose():
    """Compose the real config tree in-process: compose("stage=rm", "beta=0.01")."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    def _compose(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def sweep(tmp_path_factory):
    """`python run.py -m experiment=smoke beta=0.1,0.01` (objective=ib, the default): the smoke
    upstream (SFT, gold RM, labels, two proxy RMs, two PPO runs) that several test files reuse."""
    root = tmp_path_factory.mktemp("sweep")
    proc = run_inform("-m", "experiment=smoke", "beta=0.1,0.01", cwd=root)
    return root, proc


def copy_upstream(root: Path, dest: Path, stages=("sft", "gold", "label", "rm", "sft_stats", "sft_train_stats")) -> Path:
    """The sweep's cached stages copied to `dest/artifacts`: a test that adds artifacts of its
    own (ensemble members, RLOO, best-of-n) reuses the upstream without changing the shared folder."""
    for art in (root / "artifacts").iterdir():
        if art.is_dir() and art.name.rsplit("-", 1)[0] in stages:
            shutil.copytree(art, dest / "artifacts" / art.name)
    return dest / "artifacts"
