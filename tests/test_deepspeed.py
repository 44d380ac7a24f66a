"""DeepSpeed ZeRO-2/3 code paths on the CPU: Lightning's DeepSpeedStrategy with DeepSpeed's own
CPU accelerator (gloo), only Lightning's CUDA check lifted (tests/helpers/cpu_deepspeed.py).
The real engine partitions, reduces, clips, steps and checkpoints; the GPU figures are in
benchmarks/RESULTS.md."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import ROOT, run_inform

# the trainer configs of conf/trainer, on the CPU (32-bit: DeepSpeed's CPU accelerator)
ON_CPU = ["trainer.accelerator=cpu", "trainer.precision=32-true",
          "trainer.strategy._target_=tests.helpers.cpu_deepspeed.CPUDeepSpeedStrategy"]
ZERO3 = ["experiment=smoke", "trainer=deepspeed_zero3", *ON_CPU, "logger=csv", "ppo.steps=8", "ppo.eval_every=4"]


def test_ppo_policy_and_critic_train_under_zero2_and_zero3_as_under_the_plain_trainer(tmp_path):
    """One optimizer, two parameter groups: the update DeepSpeed's engine makes is the plain
    trainer's (ZeRO-2 bit for bit; ZeRO-3 to float noise). Clipping off here: under DeepSpeed
    it is the joint norm of policy and critic, outside it one norm each."""
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "ppo_deepspeed.py"), str(tmp_path), "1e6"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = torch.load(tmp_path / "ppo_deepspeed.pt")
    for run in ("plain", "zero2", "zero3"):
        assert r[run]["groups"] == [("policy", 1e-3), ("critic", 3e-3)]
    moved = max((r["plain"]["policy"][k] - r["sft_policy"][k]).abs().max().item() for k in r["sft_policy"])
    assert moved > 1e-3  # three iterations did train the policy
    for model in ("policy", "critic"):
        assert all(torch.equal(r["zero2"][model][k], v) for k, v in r["plain"][model].items()), model
    for model, base in (("policy", r["sft_policy"]), ("critic", r["plain"]["critic_init"])):
        plain, z3 = r["plain"][model], r["zero3"][model]
        assert sorted(z3) == sorted(plain) and all(z3[k].shape == v.shape for k, v in plain.items())  # full, gathered
        off = sum((z3[k] - v).pow(2).sum() for k, v in plain.items()).sqrt()
        step = sum((v - base[k]).pow(2).sum() for k, v in plain.items()).sqrt()
        assert off < 0.05 * step, (model, off.item(), step.item())


def test_zero3_reaches_the_tensors_in_a_reward_models_output():
    """ZeRO-3 wraps each tensor of a module's output to hook its backward; it finds them only
    in tuples, lists and dicts. RewardOutput was a dataclass, and the H200 run warned
    ("unknown inputs or outputs type") and left the reward head's outputs unhooked."""
    from deepspeed.runtime.zero.utils import apply_to_tensors_only

    from inform.models.reward_model import RewardOutput

    out = RewardOutput(reward=torch.ones(2), hidden=torch.ones(2, 3), mu=torch.ones(2, 4))
    touched = apply_to_tensors_only(lambda t: t * 2, out)
    assert isinstance(touched, RewardOutput) and touched.logvar is None
    assert touched.reward.tolist() == [2.0, 2.0] and touched.hidden.sum().item() == 12.0 and touched.mu.sum().item() == 16.0


@pytest.fixture(scope="module")
def zero3_pipeline(tmp_path_factory):
    """The smoke pipeline (SFT, gold RM, labels, IB proxy RM, PPO) under ZeRO-3."""
    root = tmp_path_factory.mktemp("zero3")
    run_inform(*ZERO3, f"hydra.run.dir={root}/run", cwd=root, timeout=900)
    return root


def export(art: Path, stage: str) -> Path:
    (path,) = [p for p in art.glob(f"{stage}-*") if p.is_dir()]
    return path


def test_the_pipeline_trains_under_zero3_and_exports_full_weights(zero3_pipeline, sweep):
    root = zero3_pipeline
    for stage in ("sft", "gold", "rm", "ppo"):
        ckpt = root / "run" / stage / "checkpoints" / "last.ckpt"
        assert ckpt.is_dir() and list(ckpt.glob("checkpoint/*model_states.pt")), stage  # DeepSpeed's folder
    # the ZeRO-3 SFT export is the plain trainer's (same data order, same steps) up to float drift
    plain_root, _ = sweep  # experiment=smoke with the cpu trainer
    plain = load_file(export(plain_root / "artifacts", "sft") / "model.safetensors")
    z3 = load_file(export(root / "artifacts", "sft") / "model.safetensors")
    assert sorted(z3) == sorted(plain)
    assert max((z3[k] - v).abs().max().item() for k, v in plain.items()) < 2e-3
    assert max(v.abs().max().item() for v in plain.values()) > 0.5
    # the RMs were scored with their export (gathered weights): a real spread, a useful gold RM
    gold = json.loads((export(root / "artifacts", "gold") / "metrics.json").read_text())
    assert gold["val/acc"] > 0.7 and gold["rm/score_std"] > 0.5
    history = json.loads((export(root / "artifacts", "ppo") / "eval_history.json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 4, 8]
    policy = load_file(export(root / "artifacts", "ppo") / "policy" / "model.safetensors")
    assert max((policy[k] - z3[k]).abs().max().item() for k in z3) > 1e-4  # PPO moved the policy off SFT


def test_a_preempted_ppo_under_zero3_resumes_from_its_deepspeed_checkpoint(zero3_pipeline, tmp_path):
    """USR1 mid-training: the DeepSpeed checkpoint folder is written, the job exits; run again, it
    resumes there and ends where the uninterrupted run ended."""
    base = zero3_pipeline
    art = tmp_path / "artifacts"
    for p in (base / "artifacts").iterdir():
        if p.is_dir() and not p.name.startswith("ppo-"):
            shutil.copytree(p, art / p.name)
    cmd = [sys.executable, str(ROOT / "run.py"), *ZERO3, "stage=ppo", f"paths.artifacts={art}", f"hydra.run.dir={tmp_path}/run"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    csv = tmp_path / "run" / "ppo" / "csv" / "part0" / "metrics.csv"
    deadline = time.time() + 300
    while not (csv.is_file() and len(csv.read_text().splitlines()) > 3):
        assert first.poll() is None and time.time() < deadline, first.stdout.read()[-4000:] if first.poll() is not None else "slow"
        time.sleep(0.2)
    first.send_signal(signal.SIGUSR1)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out[-4000:]
    ckpt = tmp_path / "run" / "ppo" / "checkpoints" / "preempt.ckpt"
    assert ckpt.is_dir() and list(ckpt.glob("checkpoint/*model_states.pt")) and not list(art.glob("ppo-*/COMPLETE"))
    proc = run_inform(*ZERO3, "stage=ppo", f"paths.artifacts={art}", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert "resuming from" in proc.stdout + proc.stderr
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]  # noqa: E731
    resumed = json.loads((export(art, "ppo") / "eval_history.json").read_text())["history"]
    whole = json.loads((export(base / "artifacts", "ppo") / "eval_history.json").read_text())["history"]
    assert [h["step"] for h in resumed] == [0, 4, 8]
    for a, b in zip(strip(resumed), strip(whole), strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)


def test_rloo_trains_under_zero3_from_the_same_upstream(zero3_pipeline, tmp_path):
    """RLOO's one optimizer under the engine (which clips at ppo.max_grad_norm): it reuses the
    ZeRO-3 upstream, evaluates on PPO's schedule and exports its gathered policy."""
    base = zero3_pipeline
    art = tmp_path / "artifacts"
    for p in (base / "artifacts").iterdir():
        if p.is_dir() and not p.name.startswith("ppo-"):
            shutil.copytree(p, art / p.name)
    proc = run_inform(*ZERO3, "stage=rloo", "rloo.k=4", f"paths.artifacts={art}", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert "rloo: built" in proc.stdout and "sft: built" not in proc.stdout
    out = export(art, "rloo")
    assert [h["step"] for h in json.loads((out / "eval_history.json").read_text())["history"]] == [0, 4, 8]
    sft = load_file(export(art, "sft") / "model.safetensors")
    policy = load_file(out / "policy" / "model.safetensors")
    assert sorted(policy) == sorted(sft) and all(policy[k].shape == v.shape for k, v in sft.items())
    assert max((policy[k] - v).abs().max().item() for k, v in sft.items()) > 1e-4
