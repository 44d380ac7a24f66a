"""The Slurm launchers and preemption-safe resume, on the real single-node Slurm that
`bash ../shared/slurm/start-slurm.sh` starts (CI does; INFORM_REQUIRE_SLURM=1 makes these
fail instead of skip without it). No mock of sbatch: real jobs, arrays, dependencies,
signals and requeues. Runs use the smoke experiment to stay within a few minutes."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from inform.tracking.csv_metrics import read_csv_metrics, series
from inform.tracking.wandb_offline import find_runs
from tests.conftest import ROOT, run_inform

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SMOKE = ["experiment=smoke"]


def sh(*cmd: str, env: dict | None = None, cwd: Path = ROOT) -> str:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def job_info(job: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv) if out.strip() else {}


def wait_jobs(jobs: list[str], timeout: float = 600) -> None:
    """Until none of the jobs (or array tasks) is pending or running."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        queued = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(jobs)], capture_output=True, text=True).stdout.split()
        if not queued:
            return
        time.sleep(2)
    raise AssertionError(f"jobs {jobs} still queued after {timeout}s:\n{sh('squeue')}")


def states(job: str) -> list[str]:
    """JobState of a job, or of every task of an array job."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
    return re.findall(r"JobState=(\w+)", out)


def job_times(log: Path) -> tuple[float, float]:
    text = log.read_text()
    start = float(re.search(r"inform-job start ([\d.]+)", text).group(1))
    end = float(re.findall(r"inform-job end ([\d.]+) status=0", text)[-1])
    return start, end


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A folder whose artifacts/ the Slurm tests share (the smoke upstream is built once)."""
    root = tmp_path_factory.mktemp("slurm")
    env = {"INFORM_OUTPUTS": str(root / "outputs"), "INFORM_MULTIRUN": str(root / "multirun")}
    return root, env


def test_sweep_sh_runs_the_grid_as_a_job_array(shared):
    root, env = shared
    sweep = root / "sweep"
    out = sh("sbatch", "--parsable", f"--output={root}/launcher-%j.out", "slurm/sweep.sh", *SMOKE, "stage=rm",
             "beta=0.1,0.01", "latent_dim=64,128", f"paths.artifacts={root}/artifacts", env={**env, "INFORM_SWEEP_DIR": str(sweep)})
    launcher = out.strip()
    wait_jobs([launcher], 120)
    array = (sweep / "array_job_id").read_text().strip()
    wait_jobs([array], 600)
    assert states(array) == ["COMPLETED"] * 4, sh("scontrol", "show", "job", array)
    runs = [r for r in find_runs(sweep) if r.job_type == "rm"]
    assert sorted((r.config["beta"], r.config["latent_dim"]) for r in runs) == [(0.01, 64), (0.01, 128), (0.1, 64), (0.1, 128)]
    for task in range(4):  # each point in its own task folder, logged under the job and array ids
        (run,) = [r for r in runs if str(r.path).startswith(f"{sweep / str(task)}/")]
        assert run.group == "sweep" and run.series("train/loss")
        assert (sweep / "logs" / f"inform-sweep_{array}_{task}.out").is_file()
    logs = "".join(p.read_text() for p in (sweep / "logs").glob("*.out"))
    for stage in ("sft", "gold", "label"):  # the shared upstream was built by one task only
        assert logs.count(f"{stage}: built") == 1, stage
    assert logs.count("rm: built") == 4


def test_pipeline_sh_chains_its_stages_in_dependency_order(shared):
    root, env = shared
    logs = root / "pipeline-logs"
    logs.mkdir()
    out = sh("bash", "slurm/pipeline.sh", *SMOKE, "beta=0.1,0.01", "ppo.steps=4", f"paths.artifacts={root}/artifacts",
             env={**env, "INFORM_SBATCH": f"--output={logs}/%x-%j.out", "INFORM_SWEEP_DIR": str(root / "pipeline")})
    ids = dict(line.split()[:2] for line in out.splitlines() if re.match(r"^(sft|gold|label|ppo) \d+", line))
    assert set(ids) == {"sft", "gold", "label", "ppo"}
    for job, after in (("gold", "sft"), ("label", "gold"), ("ppo", "label")):  # while they wait
        assert f"afterok:{ids[after]}" in job_info(ids[job]).get("Dependency", ""), job
    wait_jobs(list(ids.values()), 600)
    for stage in ("sft", "gold", "label"):
        assert states(ids[stage]) == ["COMPLETED"], stage
    assert states(ids["ppo"]) == ["COMPLETED"] * 2
    t = {s: job_times(logs / f"inform-{s}-{ids[s]}.out") for s in ("sft", "gold", "label")}
    tasks = [job_times(p) for p in sorted((root / "pipeline" / "logs").glob(f"inform-ppo_{ids['ppo']}_*.out"))]
    assert len(tasks) == 2
    assert t["sft"][1] <= t["gold"][0] and t["gold"][1] <= t["label"][0]  # each starts after the previous ended
    assert all(t["label"][1] <= start for start, _ in tasks)
    assert len([r for r in find_runs(root / "pipeline") if r.job_type == "ppo"]) == 2


def test_submitit_launcher_runs_a_two_point_sweep_through_slurm(shared):
    root, _ = shared
    run_inform("-m", "hydra/launcher=slurm", *SMOKE, "stage=rm", "latent_dim=32", "beta=0.1,0.01", f"paths.artifacts={root}/artifacts",
               f"hydra.sweep.dir={root}/submitit", "hydra.launcher.timeout_min=15", cwd=root, timeout=900)
    runs = [r for r in find_runs(root / "submitit") if r.job_type == "rm"]
    assert sorted(r.config["beta"] for r in runs) == [0.01, 0.1] and {r.config["latent_dim"] for r in runs} == {32}
    assert sorted(p.name for p in (root / "submitit").iterdir() if p.name.isdigit()) == ["0", "1"]
    tasks = [p.name for p in (root / "submitit" / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name)]
    assert len(tasks) == 2 and len({t.split("_")[0] for t in tasks}) == 1  # one real Slurm array, two tasks
    for task in tasks:
        assert "Job completed successfully" in next((root / "submitit" / ".submitit" / task).glob("*_log.out")).read_text()


def preempted_run(shared, name: str, overrides: list[str], progress_rows: int, stage: str, copy_upstream: bool):
    """The same run twice: once locally without interruption, once as a Slurm job that gets
    USR1 mid-training, checkpoints, requeues and resumes. Returns both run folders."""
    root, env = shared
    base, slurm = root / f"{name}-base", root / f"{name}-slurm"
    for d in (base, slurm):
        d.mkdir()
        if copy_upstream:  # the smoke upstream, built by the sweep test
            for art in (root / "artifacts").iterdir():
                if art.is_dir() and art.name.split("-")[0] in ("sft", "gold", "label", "rm"):
                    shutil.copytree(art, d / "artifacts" / art.name)
    one_thread = {"OMP_NUM_THREADS": "1"}  # the Slurm job has one CPU: same arithmetic
    run_inform(*overrides, f"paths.artifacts={base}/artifacts", f"hydra.run.dir={base}/run", cwd=root, env=one_thread)
    job = sh("sbatch", "--parsable", f"--output={slurm}/job-%j.out", "slurm/run.sh", *overrides,
             f"paths.artifacts={slurm}/artifacts", env={**env, "INFORM_OUTPUTS": str(slurm), **one_thread}).strip()
    csv = slurm / f"slurm-{job}" / stage / "csv" / "part0" / "metrics.csv"
    deadline = time.time() + 300
    while not (csv.is_file() and len(csv.read_text().splitlines()) > progress_rows):
        assert time.time() < deadline, (slurm / f"job-{job}.out").read_text()
        time.sleep(0.5)
    sh("scancel", "--signal=USR1", "--batch", job)  # to the batch shell, which forwards it
    wait_jobs([job], 600)
    info = job_info(job)
    log = (slurm / f"job-{job}.out").read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, log[-6000:])
    assert "restart=0" in log and "restart=1" in log and "resuming from" in log
    return base / "run" / stage, slurm / f"slurm-{job}" / stage, base / "artifacts", slurm / "artifacts"


def same_rows(a: list[dict], b: list[dict]) -> bool:
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]  # noqa: E731
    return strip(a) == strip(b)


def test_ppo_preempted_mid_training_resumes_and_matches_an_uninterrupted_run(shared):
    steps = 24
    base, slurm, base_art, slurm_art = preempted_run(
        shared, "ppo", [*SMOKE, f"ppo.steps={steps}", "stage=ppo"], progress_rows=8, stage="ppo", copy_upstream=True,
    )
    # the final eval and every logged metric equal the uninterrupted run's (bit for bit here)
    (a,), (b,) = list(base_art.glob("ppo-*/eval_history.json")), list(slurm_art.glob("ppo-*/eval_history.json"))
    ha, hb = json.loads(a.read_text())["history"], json.loads(b.read_text())["history"]
    assert same_rows(ha, hb) and ha[-1]["step"] == steps
    assert same_rows(read_csv_metrics(base / "csv"), read_csv_metrics(slurm / "csv"))
    assert len(list((slurm / "csv").glob("part*"))) == 2
    # one W&B run id, written by both attempts: every PPO step logged exactly once
    (run,) = [r for r in find_runs(slurm, merge_resumed=True) if r.job_type == "ppo"]
    assert len(list(slurm.glob("wandb/offline-run-*"))) == 2
    assert [s for s, _ in run.series("objective/kl")] == list(range(1, steps + 1))
    assert [s for s, _ in run.series("reward/gold")] == [h["step"] for h in hb]
    kl_base = series(read_csv_metrics(base / "csv"), "objective/kl")
    assert [v for _, v in run.series("objective/kl")] == pytest.approx([v for _, v in kl_base], abs=1e-6)


def test_rm_preempted_mid_epoch_resumes_and_matches_an_uninterrupted_run(shared):
    overrides = ["stage=rm", "rm.data=human", "rm.init=base", "objective=ib", "beta=0.01", "latent_dim=32",
                 "data.preference.n=5000", "rm.epochs=2", "rm.val_size=256"]
    base, slurm, base_art, slurm_art = preempted_run(shared, "rm", overrides, progress_rows=3, stage="rm", copy_upstream=False)
    (a,), (b,) = list(base_art.glob("rm-*/metrics.json")), list(slurm_art.glob("rm-*/metrics.json"))
    ma, mb = json.loads(a.read_text()), json.loads(b.read_text())
    for key in ("val/acc", "val/loss", "train/loss", "rm/kl", "rm/score_mean", "rm/score_std"):
        assert mb[key] == pytest.approx(ma[key], abs=1e-6), key
    rows_a, rows_b = read_csv_metrics(base / "csv"), read_csv_metrics(slurm / "csv")
    assert same_rows(rows_a, rows_b)
    steps = [s for s, _ in series(rows_b, "train/loss")]
    assert steps == sorted(set(steps)) and len(steps) >= 10  # none twice, none missing (same as uninterrupted)
    (run,) = [r for r in find_runs(slurm, merge_resumed=True) if r.job_type == "rm"]
    assert [s for s, _ in run.series("train/loss")] == steps


def test_a_two_process_slurm_job_preempted_mid_epoch_resumes_on_both_ranks(shared, tmp_path):
    """INFORM_NPROC=2: run.sh starts srun, one task per node, and its slurm/node.sh starts torchrun
    (c10d rendezvous on the job's first node, as for several nodes), and the two ranks train
    one RM together (2 x 16 pairs a step). USR1 to the batch shell mid-epoch reaches both ranks
    (shell -> srun -> node.sh -> workers): they stop after the same step, write the checkpoint,
    rank 0 requeues, and the requeued job resumes on both.
    The RM equals the one that one uninterrupted process trains with 32 pairs a step."""
    root, env = shared
    rm = ["experiment=smoke", "stage=rm", "rm.data=human", "rm.init=base", "objective=bt", "rm.epochs=1", "data.preference.n=6000",
          "trainer.precision=32-true", "logger=csv"]
    job = sh("sbatch", "--parsable", "--cpus-per-task=2", f"--output={tmp_path}/job-%j.out", "slurm/run.sh", *rm, "trainer=ddp",
             "trainer.accelerator=cpu", "trainer.devices=2", "rm.batch_size=16", f"paths.artifacts={tmp_path}/two",
             env={**env, "INFORM_NPROC": "2", "INFORM_OUTPUTS": str(tmp_path), "OMP_NUM_THREADS": "1"}).strip()
    csv = tmp_path / f"slurm-{job}" / "rm" / "csv" / "part0" / "metrics.csv"
    deadline = time.time() + 300
    while not (csv.is_file() and len(csv.read_text().splitlines()) > 3):
        assert time.time() < deadline, (tmp_path / f"job-{job}.out").read_text()
        time.sleep(0.5)
    sh("scancel", "--signal=USR1", "--batch", job)  # to the batch shell, which forwards it to each rank
    run_inform(*rm, "rm.batch_size=32", f"paths.artifacts={tmp_path}/one", f"hydra.run.dir={tmp_path}/one-run", cwd=tmp_path,
               env={"OMP_NUM_THREADS": "1"})
    wait_jobs([job], 600)
    info, log = job_info(job), (tmp_path / f"job-{job}.out").read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, log[-6000:])
    assert log.count("preempt: rank 1 stops") == 1 and log.count(f"inform-job requeue {job}") == 1, log[-6000:]
    assert log.count("inform-node ") == 2 and "(1 of 1): torchrun, 2 workers" in log  # each attempt through srun and node.sh
    assert "Traceback" not in log and log.count("status=0") == 2  # the requeue came after both ranks had exited
    assert log.count("resuming from") == 2  # both ranks, from the one checkpoint
    assert " - rm: built " in log and " - rm: rank 1 uses " in log
    (two,), (one,) = list((tmp_path / "two").glob("rm-*/metrics.json")), list((tmp_path / "one").glob("rm-*/metrics.json"))
    m2, m1 = json.loads(two.read_text()), json.loads(one.read_text())
    assert m2["val/acc"] == m1["val/acc"] and m2["val/loss"] == pytest.approx(m1["val/loss"], rel=1e-5)
    rows = read_csv_metrics(tmp_path / f"slurm-{job}" / "rm" / "csv")  # the two attempts' parts, joined
    assert len(list((tmp_path / f"slurm-{job}" / "rm" / "csv").glob("part*"))) == 2
    steps = [s for s, _ in series(rows, "train/loss")]  # rank 0's own half-batch loss: steps, not values, compare
    assert steps == [s for s, _ in series(read_csv_metrics(tmp_path / "one-run" / "rm" / "csv"), "train/loss")]  # none twice or lost


def test_a_multi_process_job_stuck_after_its_checkpoint_is_stopped_by_node_sh_with_no_worker_left(tmp_path):
    """The srun path (INFORM_NPROC=2): USR1 reaches both workers through srun and node.sh; each
    asks for the requeue and then hangs. node.sh stops its torchrun after INFORM_REQUEUE_GRACE_S
    (torchrun stops its workers; srun would have SIGKILLed node.sh and torchrun and left the
    workers, in sessions of their own, running), and the batch shell still asks for the
    requeue (of a job id that does not exist here, so that it fails and the job ends)."""
    marker = f"inform-stuck-{os.getpid()}-{time.monotonic_ns()}"
    stuck = tmp_path / f"{marker}.py"
    stuck.write_text("import os, signal, time\n"
                     "signal.signal(signal.SIGUSR1, lambda *a: open(os.environ['INFORM_REQUEUE_FILE'], 'w').write('4242'))\n"
                     "print('worker', os.environ['RANK'], 'ready', flush=True)\n"
                     "time.sleep(1000)\n")
    batch = tmp_path / "job.sh"
    batch.write_text(f"#!/bin/bash\nsource slurm/common.sh\nrun_forwarding_signals \"${{LAUNCH[@]}}\" {stuck}\n")
    log = tmp_path / "job.out"
    job = sh("sbatch", "--parsable", "--cpus-per-task=2", f"--output={log}", str(batch),
             env={"INFORM_NPROC": "2", "INFORM_REQUEUE_GRACE_S": "2", "INFORM_REQUEUE_DIR": str(tmp_path),
                  "INFORM_ROOT": str(ROOT)}).strip()
    deadline = time.time() + 120
    while not (log.is_file() and log.read_text().count("ready") == 2):
        assert time.time() < deadline, log.read_text() if log.is_file() else "no log"
        time.sleep(0.5)
    sh("scancel", "--signal=USR1", "--batch", job)
    wait_jobs([job], 120)
    out = log.read_text()
    assert "inform-node: the run did not exit 2s after its checkpoint; stopping it" in out, out
    assert "inform-job: the run did not exit" not in out  # node.sh did it, long before the shell's own grace
    assert "inform-job requeue 4242" in out and "scontrol requeue 4242 failed" in out, out
    assert job_info(job).get("Restarts", "0") == "0" and not list(tmp_path.glob(".requeue-*"))
    time.sleep(1)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1  # no worker left running
