"""Faults, each on the real code path: bad inputs, a killed build, two racing processes,
non-finite losses, truncated files, secrets, W&B without network. Every error must name its
culprit, and nothing already saved may be lost or trusted when it should not be."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from inform.data.collate import encode_prompts
from inform.data.sources import DataError
from inform.models.causal_lm import build_causal_lm, load_causal_lm
from inform.models.reward_model import RewardModel
from inform.models.tokenizer import load_tokenizer, train_tiny_tokenizer
from inform.tracking.loggers import redact
from inform.runtime.preempt import check_resume_checkpoint
from inform.tracking.wandb_offline import find_runs
from tests.conftest import ROOT, run_inform

SFT = ["stage=sft", "sft.max_steps=20", "sft.val_every=10", "data.sft.n=3000", "sft.val_size=200"]


def complete(root: Path, stage: str) -> list[Path]:
    return [p for p in (root / "artifacts").glob(f"{stage}-*") if (p / "COMPLETE").is_file()]


# --------------------------------------------------------------------------- bad inputs, in-process
def test_an_overlong_prompt_is_refused_naming_its_row():
    tok = train_tiny_tokenizer()
    prompts = ["Copy: apple =", "Copy:" + " moon" * 40 + " ="]
    assert len(encode_prompts(tok, prompts, 16)[1]) == 16  # the default keeps the last 16 tokens
    with pytest.raises(DataError, match=r"data\.sft: row 1 has a prompt of 43 tokens, more than data\.max_prompt_tokens=16"):
        encode_prompts(tok, prompts, 16, on_long="error", source="data.sft")


def test_a_tokenizer_of_another_model_is_refused(compose, tmp_path):
    from inform.config import validate

    cfg = validate(compose())
    tok = load_tokenizer(cfg.policy)
    model = build_causal_lm(cfg.policy, tok)
    model.save_pretrained(tmp_path / "m")
    bigger = load_tokenizer(cfg.policy)
    bigger.add_tokens([f"<extra{i}>" for i in range(50)])
    with pytest.raises(ValueError, match=rf"{tmp_path / 'm'}: the tokenizer has {len(tok) + 50} tokens but the model's embedding only {len(tok)} rows"):
        load_causal_lm(str(tmp_path / "m"), bigger)


def test_missing_and_truncated_exports_are_named(compose, tmp_path):
    from inform.config import validate

    cfg = validate(compose())
    tok = load_tokenizer(cfg.policy)
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'nothing'}: not a model export"):
        load_causal_lm(str(tmp_path / "nothing"), tok)
    model = build_causal_lm(cfg.policy, tok)
    model.save_pretrained(tmp_path / "lm")
    weights = tmp_path / "lm" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a real truncated file
    with pytest.raises(RuntimeError, match=rf"{tmp_path / 'lm'}: the model export cannot be read, it may be truncated"):
        load_causal_lm(str(tmp_path / "lm"), tok)
    rm = RewardModel.from_causal_lm(build_causal_lm(cfg.policy, tok), {"kind": "scalar"})
    rm.save_pretrained(tmp_path / "rm", tok)
    head = tmp_path / "rm" / "head.safetensors"
    head.write_bytes(head.read_bytes()[:40])
    with pytest.raises(RuntimeError, match=rf"{tmp_path / 'rm'}: the reward-model export cannot be read"):
        RewardModel.from_pretrained(tmp_path / "rm")


def test_a_resume_checkpoint_that_is_truncated_or_of_another_config_is_refused(tmp_path):
    ckpt = tmp_path / "preempt.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(3)}, "callbacks": {"PreemptCheckpoint": {"fingerprint": "aaa111"}}}, ckpt)
    check_resume_checkpoint(ckpt, "aaa111")  # its own config: accepted
    with pytest.raises(RuntimeError, match=r"preempt\.ckpt: written by another configuration of this stage \(stage hash aaa111 != bbb222\)"):
        check_resume_checkpoint(ckpt, "bbb222")
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(RuntimeError, match=r"preempt\.ckpt: the checkpoint cannot be read, it may be truncated"):
        check_resume_checkpoint(ckpt, "aaa111")


def test_secrets_are_redacted_from_logged_configs():
    cfg = {"logger": {"wandb": {"api_key": "sk-123", "project": "p"}}, "hub_token": "hf_abc", "name": "x", "password": None}
    assert redact(cfg) == {"logger": {"wandb": {"api_key": "***", "project": "p"}}, "hub_token": "***", "name": "x", "password": None}


# --------------------------------------------------------------------------- the real entry point
def test_unwritable_artifact_and_output_folders_are_named_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = run_inform(*SFT, f"paths.artifacts={blocker}/artifacts", cwd=tmp_path, check=False, timeout=180)
    assert proc.returncode != 0 and f"paths.artifacts: cannot write to {blocker}/artifacts" in proc.stderr
    proc = run_inform(*SFT, f"paths.output_dir={blocker}/run", cwd=tmp_path, check=False, timeout=180)
    assert proc.returncode != 0 and f"paths.output_dir (the run folder: logs, W&B, checkpoints): cannot write to {blocker}/run" in proc.stderr
    assert not complete(tmp_path, "sft")


def test_slurm_launcher_without_slurm_stops_before_anything_runs(tmp_path):
    proc = run_inform("-m", "hydra/launcher=slurm", *SFT, "seed=0,1", cwd=tmp_path, check=False, timeout=180,
                      env={"PATH": "/nonexistent"})
    assert proc.returncode != 0 and "are you indeed on a slurm cluster?" in proc.stderr
    assert not (tmp_path / "artifacts").exists()


def test_an_artifact_without_its_completion_marker_is_rebuilt(tmp_path):
    run_inform(*SFT, cwd=tmp_path)
    (art,) = complete(tmp_path, "sft")
    (art / "COMPLETE").unlink()  # as if a copy had been cut short
    (art / "model.safetensors").write_bytes(b"garbage")
    proc = run_inform(*SFT, cwd=tmp_path)
    assert "has no COMPLETE marker" in proc.stdout and "sft: built" in proc.stdout
    assert complete(tmp_path, "sft") == [art]
    assert (art / "model.safetensors").stat().st_size > 1000  # the garbage was not trusted


def test_a_build_killed_mid_write_leaves_nothing_trusted_and_is_rebuilt(tmp_path):
    args = ["stage=sft", "sft.max_steps=400", "sft.val_every=200", "logger=csv"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "2"})
    deadline = time.time() + 120
    while not (list((tmp_path / "artifacts").glob(".sft-*.tmp-*")) and list(tmp_path.rglob("csv/part0/metrics.csv"))):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # mid-build: the artifact folder is being written
    proc.wait()
    assert not complete(tmp_path, "sft") and list((tmp_path / "artifacts").glob(".sft-*.tmp-*"))
    killed = run_inform(*args, cwd=tmp_path, timeout=600).stdout  # the same config again
    assert "left by an interrupted build" in killed and "sft: built" in killed
    assert not list((tmp_path / "artifacts").glob(".sft-*.tmp-*"))


def test_two_processes_needing_one_stage_build_it_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, str(ROOT / "run.py"), *SFT, f"hydra.run.dir={tmp_path}/run{i}"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
             for i in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    joined = "".join(outs)
    assert joined.count("sft: built") == 1 and joined.count("(built by another job)") == 1
    assert len(complete(tmp_path, "sft")) == 1
    assert len([r for r in find_runs(tmp_path) if r.job_type == "sft"]) == 1  # one trained, one waited


NAN_RM = ["stage=rm", "rm.data=human", "rm.init=base", "objective=bt", "data.preference.n=3000", "rm.val_size=200",
          "rm.epochs=1", "objective.loss._target_=tests.helpers.faults.nan_loss_after", "+objective.loss.after=5"]


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_weights(tmp_path):
    proc = run_inform(*NAN_RM, "logger=csv", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, check=False, timeout=300)
    assert proc.returncode != 0
    assert "train/loss is nan at step 5: stopped (on_nonfinite=stop)" in proc.stderr
    good = tmp_path / "run" / "rm" / "checkpoints" / "last_good.ckpt"
    ckpt = torch.load(good, map_location="cpu", weights_only=True)  # loads as plain tensors
    assert ckpt["global_step"] == 5
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    assert not complete(tmp_path, "rm")  # nothing half-trained is exported


def test_a_nan_loss_is_skipped_when_asked(tmp_path):
    proc = run_inform(*NAN_RM, "on_nonfinite=skip", "logger=csv", cwd=tmp_path, timeout=300)
    assert "batch skipped" in proc.stdout + proc.stderr
    (art,) = complete(tmp_path, "rm")
    metrics = json.loads((art / "metrics.json").read_text())
    assert metrics["train/skipped_nonfinite"] == 3  # the three planted NaN batches, and training went on
    assert metrics["val/acc"] > 0.6


def test_online_wandb_without_key_or_network_falls_back_offline_and_leaks_nothing(tmp_path):
    """Also: an API key in the environment lands in no file; a config value is never run as code."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "WANDB_API_KEY": "", "WANDB_BASE_URL": "https://unreachable.invalid"}
    evil = "__import__('os').system('touch PWNED')"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *SFT, "logger.wandb.offline=false", f"name={evil!r}"], cwd=tmp_path,
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env={**os.environ, **env, "OMP_NUM_THREADS": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "W&B online logging asked for, but no W&B API key" in proc.stdout
    (run,) = find_runs(tmp_path)
    assert run.config["name"] == evil and not (tmp_path / "PWNED").exists()
    # with a key but no network: offline too, and the key is written nowhere
    env["WANDB_API_KEY"] = "wandb-secret-key-0123456789abcdef01234567"
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *SFT, "sft.max_steps=10", "logger.wandb.offline=false"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, **env, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0 and "unreachable.invalid is not reachable" in proc.stdout
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert b"wandb-secret-key" not in f.read_bytes(), f


def test_a_run_started_from_a_process_using_wandb_gets_its_own_wandb_service(tmp_path):
    """A parent that ran wandb.init (a notebook, a test session) passes WANDB_SERVICE to what it
    starts. A requeued job resuming its run id inside the parent's service, where the killed
    attempt left it open, was refused ("run ID ... is in use"); each inform process owns its service."""
    run_dir = tmp_path / "run"
    (run_dir / "sft").mkdir(parents=True)
    (run_dir / "sft" / "wandb_id").write_text("openrun01")  # the id a first (killed) attempt used
    parent = f"""
import os, subprocess, sys, wandb
wandb.init(project="inform", mode="offline", dir={str(tmp_path)!r}, id="openrun01")  # left open, as by a killed job
assert os.environ.get("WANDB_SERVICE")
cmd = [sys.executable, {str(ROOT / "run.py")!r}, *{SFT!r}, "sft.max_steps=4", "hydra.run.dir={run_dir}"]
sys.exit(subprocess.run(cmd, cwd={str(tmp_path)!r}).returncode)
"""
    proc = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    (run,) = [r for r in find_runs(run_dir) if r.job_type == "sft"]
    assert run.run_id == "openrun01" and run.config["stage"]["name"] == "sft"


def test_a_preemption_signal_before_training_starts_stops_the_run_cleanly(tmp_path):
    """USR1 as soon as the run has started (before any Trainer exists): the handler installed at
    start records it and the run leaves at the next stage boundary, with exit status 0 and
    nothing half-built (before, USR1's default action killed the process there)."""
    proc = subprocess.Popen([sys.executable, "-u", str(ROOT / "run.py"), *SFT, f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = []
    for line in proc.stdout:  # "Seed set to" comes right after the handler is installed (run.py)
        lines.append(line)
        if "Seed set to" in line:
            proc.send_signal(signal.SIGUSR1)
            break
    out = "".join(lines) + proc.stdout.read()
    assert proc.wait(timeout=300) == 0, out[-4000:]
    assert "sft: built" not in out and not complete(tmp_path, "sft")  # it left (before training, or after a step)


def test_the_batch_script_stops_a_run_stuck_after_its_checkpoint_and_still_requeues(tmp_path):
    """slurm/common.sh: after a forwarded USR1 the run writes the job id to INFORM_REQUEUE_FILE
    (its checkpoint is saved) and should exit; one that hangs instead (here: a shell that
    ignores the rest) is stopped after INFORM_REQUEUE_GRACE_S, and the requeue is still asked
    for (here `scontrol requeue` of a job that does not exist fails, and the script says so)."""
    stuck = ("import os, signal, time; signal.signal(signal.SIGUSR1, lambda *a: open(os.environ['INFORM_REQUEUE_FILE'], 'w')"
             ".write('4242')); time.sleep(1000)")
    script = f'source slurm/common.sh; run_forwarding_signals {shlex.quote(sys.executable)} -c {shlex.quote(stuck)}'
    proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "INFORM_ROOT": str(ROOT), "INFORM_REQUEUE_GRACE_S": "2", "INFORM_REQUEUE_DIR": str(tmp_path)})
    time.sleep(1)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGUSR1)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1, out
    assert 2 <= time.monotonic() - t0 < 10, out
    assert "did not exit 2s after its checkpoint; stopping it" in out and "inform-job requeue 4242" in out
    assert "scontrol requeue 4242 failed" in out and not list(tmp_path.iterdir())  # the requeue file is gone


def test_a_signal_while_python_still_imports_neither_kills_the_run_nor_is_lost(tmp_path):
    """slurm/common.sh starts the run with USR1 ignored, so a signal that comes before inform's
    handler is installed (here: at once, while Python imports torch) is not its death (exit
    -10 before); and it sends the signal again every 10 s until the run takes it, so the run
    still leaves at its next stage boundary instead of training to the end."""
    run = [shlex.quote(sys.executable), "run.py", *SFT, "sft.max_steps=2000", f"paths.artifacts={tmp_path}/art",
           f"hydra.run.dir={tmp_path}/run"]
    script = f'source slurm/common.sh; run_forwarding_signals {" ".join(run)}'
    proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "INFORM_ROOT": str(ROOT), "INFORM_REQUEUE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"})
    time.sleep(0.5)
    proc.send_signal(signal.SIGUSR1)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0 and "inform-job end" in out and "status=0" in out, out[-4000:]
    assert "sft: built" not in out and not complete(tmp_path, "sft")  # it left instead of training 2000 steps
