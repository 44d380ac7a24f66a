"""A 6.9B reward-model training step under DeepSpeed ZeRO-3 on one GPU: step time and memory.

A random-init `--model` preset (default pythia-6.9b: GPT-NeoX, 32 layers, hidden 4096; the
LM head dropped, a scalar head added: 6.65B parameters) is trained with inform's
RewardModule (Bradley-Terry loss) under Lightning's DeepSpeedStrategy(stage=3), precision
bf16-mixed (DeepSpeed's bf16: bf16 weights on the GPU, master weights in the optimizer),
gradient checkpointing on, for `--steps` steps on one synthetic batch:

    input_ids, attention_mask: (2 * pairs, seq)

The model is built in `configure_model`, so Lightning builds it inside deepspeed.zero.Init:
each layer's bf16 weights are drawn on the GPU and partitioned as they are created; the
full model never exists in host memory or in fp32 (no 28 GB fp32 copy, no slow CPU init).

Memory, 6.65B parameters on one GPU (ZeRO-3 partitions across one rank = no sharding):
- no offload: bf16 weights 13 + bf16 grads 13 + fp32 master 27 + Adam m, v 53 GB = ~107 GB
  plus buffers: fits an H200 (141 GB), not an H100 (80 GB). Optimizer: torch AdamW
  (fused, no temporaries of the full size), no op to compile.
- --offload-optimizer (fp32 master): the host holds fp32 master 27 + m, v 53 + two fp32
  gradient buffers 27 + 13 GB = ~120 GB of the machine's 128 GiB: a run of this kind was
  killed by the host's OOM killer before its first step. Not the default.
- --offload-optimizer --master bf16 (what run.sh uses on an H100): DeepSpeed's
  `bf16_master_weights_and_grads` + `bf16_optimizer_states`: master weights, gradients and
  Adam moments in bf16 on the host, ~55 GB; GPU: bf16 weights + activations. It needs
  DeepSpeedCPUAdam (fp32_optimizer_states=False), a C++ op DeepSpeed JIT-compiles with
  ninja and the host compiler on first use (~1 min, counted in setup_s). Numerics: bf16
  master weights lose AdamW updates below ~0.4% of a weight; this measures the step's
  time and memory, not a recipe for training quality.
`--optimizer torch` with offload sets `zero_force_ds_cpu_optimizer: false` (torch AdamW on
the CPU partitions, no compile, slower), an escape if the JIT build fails.

Measured: setup_s (fit start to the first step: zero.Init build, engine, any op build),
each step's time (batch start to batch end, after torch.cuda.synchronize: forward,
backward, the ZeRO step with its host transfers), tokens/s and MFU (6 * N * tokens/s /
peak, recompute not counted) of the median step after the first, peak GPU memory
(max_memory_allocated) and the host's peak RSS.

    python -m benchmarks.gpu_zero3 --offload-optimizer --master bf16 --steps 4 --out zero3.json  # H100
    python -m benchmarks.gpu_zero3 --pairs 8 --steps 8 --out zero3.json                          # H200

Measured on an H200 (2026-11-26, benchmarks/RESULTS.md): no offload, 8 pairs, 0.99 s a step,
33% MFU, 105 GiB; with the optimizer offloaded (bf16 masters), 6.1 s a step, 15 GiB on the GPU,
64 GiB of host memory: the H100 path fits its 80 GB with room to spare.
    python -m benchmarks.gpu_zero3 --tiny --device cpu     # smoke: DeepSpeed's CPU accelerator, gloo
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from benchmarks import gpu_common as gpu  # first: stubs `datasets` where it cannot import

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from benchmarks.gpu_rm import synthetic_pairs  # noqa: E402
from inform.models.causal_lm import build_causal_lm  # noqa: E402
from inform.models.reward_model import RewardModel  # noqa: E402
from inform.modules.reward import RewardModule  # noqa: E402
from inform.objectives import bt_loss  # noqa: E402

LR, BETAS = 1e-5, (0.9, 0.95)


class ShardedRewardModule(RewardModule):
    """RewardModule whose model is built in `configure_model` (under zero.Init with ZeRO-3),
    with the optimizer that the offload mode needs."""

    def __init__(self, build, optimizer: str, bf16_states: bool):
        super().__init__(None, bt_loss, lr=LR, warmup_steps=1)
        self._build, self._optimizer, self._bf16_states = build, optimizer, bf16_states
        self.build_s = None

    def configure_model(self):
        if self.model is None:
            t0 = time.perf_counter()
            self.model = self._build()
            self.build_s = time.perf_counter() - t0

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self._optimizer == "cpu_adam":
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            opt = DeepSpeedCPUAdam(params, lr=LR, betas=BETAS, weight_decay=0.0, adamw_mode=True,
                                   fp32_optimizer_states=not self._bf16_states)
        else:
            opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, weight_decay=0.0, fused=self._optimizer == "fused")
        return opt  # DeepSpeed wraps it; a constant lr (no scheduler) over a few steps


class StepClock(Callback):
    def __init__(self, device):
        self.device, self.starts, self.ends, self.losses = device, [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(gpu.now(self.device))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.ends.append(gpu.now(self.device))
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self.losses.append(None if loss is None else float(loss))  # a finite loss: the step ran on real numbers


def make_strategy(args, device):
    from lightning.pytorch.strategies import DeepSpeedStrategy

    if device.type == "cpu":  # one rank needs no shared-memory all-reduce: skip its C++ op build (~1 min)
        import importlib

        importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None  # `deepspeed.comm.torch` is also torch
    if device.type == "cuda":
        cls = DeepSpeedStrategy
    else:  # the smoke test's CPU run: the tests' strategy, Lightning's with its CUDA checks lifted
        from tests.helpers.cpu_deepspeed import CPUDeepSpeedStrategy as cls
    strategy = cls(
        stage=3, offload_optimizer=args.offload_optimizer, offload_parameters=args.offload_params,
        pin_memory=args.pin_memory, sub_group_size=args.sub_group_size, logging_batch_size_per_gpu=2 * args.pairs,
    )
    if args.master == "bf16":
        strategy.config["bf16"] = {"enabled": True, "bf16_master_weights_and_grads": True, "bf16_optimizer_states": True}
    if args.offload_optimizer and args.optimizer != "cpu_adam":
        strategy.config["zero_force_ds_cpu_optimizer"] = False
    return strategy


def main(args) -> dict:
    if args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available()):
        os.environ["DS_ACCELERATOR"] = "cpu"  # before deepspeed is first imported
        assert "deepspeed" not in sys.modules, "deepspeed was imported before DS_ACCELERATOR was set"
    device = gpu.pick_device(args.device)
    if args.optimizer == "auto":
        args.optimizer = "cpu_adam" if args.offload_optimizer else ("fused" if device.type == "cuda" else "torch")
    if args.master == "bf16" and not (args.offload_optimizer and args.optimizer == "cpu_adam"):
        raise SystemExit("--master bf16 needs --offload-optimizer with DeepSpeedCPUAdam (DeepSpeed's rule)")
    tok = gpu.tiny_tokenizer()
    bf16 = device.type == "cuda" or args.master == "bf16"  # the CPU smoke runs fp32 unless asked for bf16 masters
    preset = gpu.load_preset(args.model, init="random", dtype="bfloat16" if bf16 else "float32",
                             gradient_checkpointing=not args.no_grad_ckpt)

    def build():
        return RewardModel.from_causal_lm(build_causal_lm(preset, tok, seed=0), {"kind": "scalar"})

    with torch.device("meta"):
        meta = build()
    n, vocab = gpu.n_params(meta), meta.backbone.get_input_embeddings().num_embeddings
    del meta
    batch = synthetic_pairs(args.pairs, args.seq, vocab)
    gpu.reset_memory(device)
    module = ShardedRewardModule(build, args.optimizer, args.master == "bf16")
    clock = StepClock(device)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, strategy=make_strategy(args, device),
        precision="bf16-mixed" if bf16 else "32-true", max_steps=args.steps, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=1.0,
        log_every_n_steps=10, callbacks=[clock], default_root_dir=tempfile.mkdtemp(prefix="inform-gpu-zero3-"),
    )
    t0 = gpu.now(device)
    trainer.fit(module, DataLoader([batch] * args.steps, batch_size=None))
    fit_s = time.perf_counter() - t0
    steps = [e - s for s, e in zip(clock.starts, clock.ends)]
    timed = steps[1:] or steps  # the first step allocates the optimizer states and warms up kernels
    step_s = statistics.median(timed)
    tokens = 2 * args.pairs * args.seq
    peak = gpu.peak_flops(device, args.peak_tflops)
    result = {
        "benchmark": "gpu_zero3", "env": gpu.environment(device), "model": args.model, "params": n,
        "zero_stage": 3, "offload_optimizer": args.offload_optimizer, "offload_params": args.offload_params,
        "master": args.master, "optimizer": args.optimizer, "pin_memory": args.pin_memory,
        "sub_group_size": args.sub_group_size, "grad_ckpt": not args.no_grad_ckpt,
        "precision": trainer.precision, "pairs": args.pairs, "seq": args.seq, "tokens_per_step": tokens,
        "build_s": module.build_s, "setup_s": clock.starts[0] - t0, "fit_s": fit_s, "interrupted": trainer.interrupted,
        "step_times_s": steps, "losses": clock.losses, "step_s": step_s, "tokens_per_s": tokens / step_s,
        "mfu": 6 * n * tokens / step_s / peak if peak else None,
        "peak_mem_gib": gpu.peak_memory_gib(device), "host_peak_rss_gib": gpu.host_peak_rss_gib(),
    }
    print(f"gpu_zero3 {args.model} offload_optimizer={args.offload_optimizer} master={args.master}: "
          f"step {step_s:.2f} s ({result['tokens_per_s']:.0f} tok/s), setup {result['setup_s']:.0f} s"
          + (f", GPU peak {result['peak_mem_gib']:.1f} GiB" if result["peak_mem_gib"] else "")
          + f", host peak {result['host_peak_rss_gib']:.1f} GiB")
    return result


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="pythia-6.9b", help="a conf/model preset (pythia-6.9b, vicuna-7b)")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3, help="the first one is left out of the median")
    ap.add_argument("--offload-optimizer", action="store_true")
    ap.add_argument("--offload-params", action="store_true")
    ap.add_argument("--master", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: bf16 master weights, gradients and Adam moments (needs --offload-optimizer)")
    ap.add_argument("--optimizer", choices=["auto", "cpu_adam", "torch", "fused"], default="auto",
                    help="auto: DeepSpeedCPUAdam with --offload-optimizer, else torch AdamW (fused on CUDA)")
    ap.add_argument("--pin-memory", action="store_true", help="pinned host buffers for the offloaded states")
    ap.add_argument("--sub-group-size", type=int, default=1_000_000_000, help="ZeRO-3 optimizer sub-group (elements)")
    ap.add_argument("--no-grad-ckpt", action="store_true")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--tiny", action="store_true", help="tiny preset, 2 pairs x 32 tokens (CPU smoke test)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.tiny:
        args.model, args.pairs, args.seq = "tiny", 2, 32
    return args


if __name__ == "__main__":
    gpu.run_main(main, parse())
