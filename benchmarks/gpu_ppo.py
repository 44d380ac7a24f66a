"""One PPO iteration at scale on one GPU: rollout and update wall time, tokens/s, peak memory.

The four models of inform's PPO, random init from conf/model presets (no hub):
- policy: `--policy` preset (default pythia-1.4b), trained;
- critic: ValueModel.from_causal_lm of the same preset (its own 1.4B backbone), trained;
- reference: the same preset in bf16 (the preset's dtype), frozen;
- proxy RM: RewardModel.from_causal_lm of `--rm` (default pythia-410m) in bf16, frozen,
  behind inform's RewardScorer.
inform's PPOModule runs under a real Lightning Trainer (manual optimization, one AdamW over
policy and critic), one prompt batch per iteration, no evaluator:

    prompts: input_ids, attention_mask (b, P) random ids, no padding; index (b,)
    rollout: sequences (b, P + R), R = --new-tokens (a random-init policy over a 50k
             vocabulary almost never samples EOS, so responses run to R)
    update:  --epochs x --minibatches minibatches of b / minibatches sequences

Trainable weights: fp32 under "bf16-mixed" (`--weights fp32`, what inform's PPO stage loads
under the gpu trainer) or bf16 under "bf16-true". Measured per iteration (the first one
includes CUDA and kernel warm-up; later ones are steady state), each after
torch.cuda.synchronize:
- generate_s: `rl.rollout.sample` alone (KV-cache sampling, temperature 0.8, top-p 0.9;
  `--kv-cache static`: the fixed-size cache, whose decoding step transformers compiles
  on the GPU during the first iteration);
- rollout_s: all of `make_experience` (sampling, the policy/reference/critic passes over
  the sequences, the RM score, GAE);
- update_s: `ppo_update`; iteration_s: the whole training step;
- generated tokens/s = response tokens / generate_s;
- peak memory: torch.cuda.max_memory_allocated over the fit; `static_mem_gib` after the
  four models are built (weights only).

    python -m benchmarks.gpu_ppo --grad-ckpt --out ppo.json      # on the GPU
    python -m benchmarks.gpu_ppo --tiny --device cpu             # smoke test
"""
from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks import gpu_common as gpu  # first: stubs `datasets` where it cannot import

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import inform.modules.ppo as ppo_module  # noqa: E402
from inform.models.reward_model import RewardModel  # noqa: E402
from inform.models.scorer import RewardScorer  # noqa: E402
from inform.models.value_model import ValueModel  # noqa: E402
from inform.modules.ppo import PPOModule  # noqa: E402
from inform.rl.ppo_config import PPOConfig  # noqa: E402


class Timed:
    """Wraps a function; records each call's duration (device-synchronized) and result."""

    def __init__(self, fn, device):
        self.fn, self.device, self.times, self.results = fn, device, [], []

    def __call__(self, *a, **k):
        t0 = gpu.now(self.device)
        out = self.fn(*a, **k)
        self.times.append(gpu.now(self.device) - t0)
        self.results.append(out)
        return out


class IterationClock(Callback):
    def __init__(self, device):
        self.device, self.times, self._t0 = device, [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = gpu.now(self.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.times.append(gpu.now(self.device) - self._t0)


def prompt_batch(b: int, length: int, vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, vocab, (b, length), generator=g)  # (b, P); ids 0/1 are EOS/pad
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "index": torch.arange(b)}


def build(args, tok, device):
    """policy, reference, critic, proxy scorer, the frozen models' dtype; trainable ones in --weights."""
    trainable = "bfloat16" if args.weights == "bf16" else "float32"
    frozen = "float32" if device.type == "cpu" and args.weights == "fp32" else "bfloat16"
    pol = gpu.load_preset(args.policy, init="random", dtype=trainable, gradient_checkpointing=args.grad_ckpt)
    policy = gpu.build_lm(pol, tok, device, seed=0)
    ref = gpu.build_lm(gpu.Preset({**pol, "dtype": frozen, "gradient_checkpointing": False}), tok, device, seed=0)
    with torch.device(device):
        critic = ValueModel.from_causal_lm(gpu.build_lm(pol, tok, device, seed=0)).to(getattr(torch, trainable))
        rm_preset = gpu.load_preset(args.rm, init="random", dtype=frozen)
        rm = RewardModel.from_causal_lm(gpu.build_lm(rm_preset, tok, device, seed=1), {"kind": "scalar"})
    return policy, ref, critic, RewardScorer(rm, tok, tok), frozen


def precision(args, device) -> str:
    if args.weights == "bf16":
        return "bf16-true"
    return "bf16-mixed" if device.type == "cuda" else "32-true"


def ppo_section():
    """conf/config.yaml's `ppo` values, read as gpu_common reads the presets: with OmegaConf where it
    imports, else with PyYAML, a `${key}` then taken from the top level (max_new_tokens: --new-tokens)."""
    path = gpu.ROOT / "conf" / "config.yaml"
    try:
        from omegaconf import OmegaConf

        return OmegaConf.load(path).ppo
    except ImportError:
        import yaml

        top = yaml.safe_load(path.read_text())
        return {k: top.get(v[2:-1], v) if isinstance(v, str) and v.startswith("${") else v for k, v in top["ppo"].items()}


def main(args) -> dict:
    device = gpu.pick_device(args.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    tok = gpu.tiny_tokenizer()
    gpu.reset_memory(device)
    policy, ref, critic, proxy, frozen = build(args, tok, device)
    static = torch.cuda.memory_allocated(device) / 2**30 if device.type == "cuda" else None
    sizes = {"policy": gpu.n_params(policy), "critic": gpu.n_params(critic), "reference": gpu.n_params(ref),
             "rm": gpu.n_params(proxy.model)}
    cfg = PPOConfig.from_section(ppo_section(), epochs=args.epochs, minibatches=args.minibatches, max_new_tokens=args.new_tokens,
                                 eval_every=10**9, kv_cache=args.kv_cache)
    module = PPOModule(policy, ref, critic, proxy, tok, cfg, evaluator=None, seed=0)
    module.make_experience = Timed(module.make_experience, device)
    module.ppo_update = Timed(module.ppo_update, device)
    sample = Timed(ppo_module.sample, device)
    ppo_module.sample = sample  # what make_experience calls: time generation alone
    clock = IterationClock(device)
    batch = prompt_batch(args.prompts, args.prompt_len, policy.get_input_embeddings().num_embeddings)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, precision=precision(args, device),
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        gradient_clip_val=None, limit_val_batches=0, log_every_n_steps=1, callbacks=[clock],
        default_root_dir=tempfile.mkdtemp(prefix="inform-gpu-ppo-"),
    )
    t0 = time.perf_counter()
    trainer.fit(module, DataLoader([batch] * args.iterations, batch_size=None))
    fit_s = time.perf_counter() - t0
    iterations = []
    for i, it_s in enumerate(clock.times):
        ro = sample.results[i]
        tokens = int(ro.response_mask.sum())
        iterations.append({
            "iteration_s": it_s, "generate_s": sample.times[i], "rollout_s": module.make_experience.times[i],
            "update_s": module.ppo_update.times[i], "generated_tokens": tokens,
            "generated_tokens_per_s": tokens / sample.times[i],
            "rollout_tokens_per_s": tokens / module.make_experience.times[i],
        })
    result = {
        "benchmark": "gpu_ppo", "env": gpu.environment(device), "policy": args.policy, "rm": args.rm, "params": sizes,
        "weights": args.weights, "frozen_dtype": frozen, "precision": precision(args, device), "grad_ckpt": args.grad_ckpt,
        "prompts": args.prompts, "prompt_len": args.prompt_len, "new_tokens": args.new_tokens, "epochs": args.epochs,
        "minibatches": args.minibatches, "kv_cache": args.kv_cache, "static_mem_gib": static, "peak_mem_gib": gpu.peak_memory_gib(device),
        "host_peak_rss_gib": gpu.host_peak_rss_gib(), "fit_s": fit_s, "interrupted": trainer.interrupted, "iterations": iterations,
        "steady": iterations[-1] if len(iterations) > 1 else None,
    }
    last = iterations[-1]
    print(f"gpu_ppo {args.policy}+critic, {args.rm} RM, {args.prompts}x({args.prompt_len}+{args.new_tokens}): "
          f"rollout {last['rollout_s']:.2f} s (generate {last['generate_s']:.2f} s, {last['generated_tokens_per_s']:.0f} tok/s), "
          f"update {last['update_s']:.2f} s" + (f", peak {result['peak_mem_gib']:.1f} GiB" if result["peak_mem_gib"] else ""))
    return result


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", default="pythia-1.4b", help="preset of the policy, critic and reference")
    ap.add_argument("--rm", default="pythia-410m", help="preset of the proxy reward model")
    ap.add_argument("--prompts", type=int, default=64, help="prompts per iteration (b)")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--minibatches", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=2, help="PPO iterations (the first one warms up)")
    ap.add_argument("--weights", choices=["bf16", "fp32"], default="fp32")
    ap.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing on policy and critic")
    ap.add_argument("--kv-cache", choices=["dynamic", "static"], default="dynamic",
                    help="rollout KV cache (ppo.kv_cache); static: transformers compiles the decoding step on the GPU "
                         "in the first iteration")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--tiny", action="store_true", help="tiny presets, 4 prompts x (8 + 8) tokens (CPU smoke test)")
    ap.add_argument("--out", default=None, help="write the JSON result here")
    args = ap.parse_args(argv)
    if args.tiny:
        args.policy, args.rm, args.prompts, args.prompt_len, args.new_tokens, args.epochs = "tiny", "tiny", 4, 8, 8, 1
    return args


if __name__ == "__main__":
    gpu.run_main(main, parse())
