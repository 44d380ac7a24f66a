"""Reward-model training throughput on one GPU: tokens/s, MFU and peak memory (issue 7).

A random-init model of a conf/model preset (default pythia-1.4b: GPT-NeoX, 24 layers,
hidden 2048; the LM head dropped, a scalar or IB head added) is trained with inform's
RewardModule under a real Lightning Trainer for `--steps` steps on one synthetic batch of
`--pairs` preference pairs of `--seq` tokens:

    input_ids, attention_mask: (2 * pairs, seq)   rows 0..pairs-1 chosen, then rejected

Two numerics (`--weights`):
- bf16: bf16 weights and AdamW states, Lightning precision "bf16-true" (no autocast);
- fp32: fp32 weights and AdamW states, "bf16-mixed" (bf16 autocast). The standard for
  training, and what inform's stages use under the gpu trainer (in bf16 weights an AdamW
  update below ~0.4% of a weight rounds away).
On the CPU (the `--tiny` smoke test) fp32 runs as "32-true".

Measured, per phase:
- step time: median gap between consecutive step starts after `--warmup` steps, read after
  torch.cuda.synchronize (a Lightning callback; the bare loop reads the same clock), so it
  includes the Trainer's loop, the batch transfer, logging, clipping and the optimizer;
- tokens/s = 2 * pairs * seq / step time (chosen and rejected tokens);
- MFU = 6 * N * tokens/s / peak, N = the RM's parameters (backbone + head, embeddings
  included), peak = dense bf16 of the device (H100/H200 SXM: 989 TFLOP/s; --peak-tflops);
  `mfu_with_attention` adds PaLM's 12 * layers * hidden * seq FLOPs per token. Recompute
  under --grad-ckpt is not counted (model FLOPs, not hardware FLOPs);
- peak memory: torch.cuda.max_memory_allocated over the phase.
The bare phase is a plain PyTorch loop on a fresh copy of the same model and batch, same
AdamW (inform's adamw_with_warmup), clipping and autocast; `ratio` = inform / bare step time.

    python -m benchmarks.gpu_rm --weights bf16 --pairs 16 --out rm.json     # on the GPU
    python -m benchmarks.gpu_rm --tiny --device cpu                         # smoke test
"""
from __future__ import annotations

import argparse
import functools
import tempfile
from contextlib import nullcontext

from benchmarks import gpu_common as gpu  # first: stubs `datasets` where it cannot import

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from inform.models.causal_lm import build_causal_lm  # noqa: E402
from inform.models.reward_model import RewardModel  # noqa: E402
from inform.modules.optim import adamw_with_warmup  # noqa: E402
from inform.modules.reward import RewardModule  # noqa: E402
from inform.objectives import bt_loss, ib_loss  # noqa: E402

LR = 1e-5


class StepClock(Callback):
    """Time of each training-batch start, after the device's queued work has finished."""

    def __init__(self, device: torch.device):
        self.device, self.starts = device, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(gpu.now(self.device))


def synthetic_pairs(pairs: int, seq: int, vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """(2 * pairs, seq) random token ids (no padding: every row is `seq` real tokens)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, vocab, (2 * pairs, seq), generator=g)  # ids 0/1 are EOS/pad
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def head_cfg(args) -> dict:
    return {"kind": "ib", "latent_dim": args.latent_dim} if args.objective == "ib" else {"kind": "scalar"}


def loss_fn(args):
    return functools.partial(ib_loss, beta=args.beta) if args.objective == "ib" else bt_loss


def make_rm(args, tok, device) -> RewardModel:
    """A fresh random-init RM (seed 0), its tensors created on `device`."""
    preset = gpu.load_preset(args.model, init="random", dtype="bfloat16" if args.weights == "bf16" else "float32",
                            gradient_checkpointing=args.grad_ckpt)
    with torch.device(device):
        model = RewardModel.from_causal_lm(gpu.build_lm(preset, tok, device, seed=0), head_cfg(args))
    if args.compile:
        model.backbone = torch.compile(model.backbone)
    return model


def precision(args, device) -> str:
    if args.weights == "bf16":
        return "bf16-true"
    return "bf16-mixed" if device.type == "cuda" else "32-true"


def lightning_phase(args, tok, device, batch) -> dict:
    gpu.reset_memory(device)
    module = RewardModule(make_rm(args, tok, device), loss_fn(args), lr=LR, warmup_steps=1)
    clock = StepClock(device)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, precision=precision(args, device),
        max_steps=args.steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, gradient_clip_val=1.0, log_every_n_steps=10, callbacks=[clock],
        default_root_dir=tempfile.mkdtemp(prefix="inform-gpu-rm-"),
    )
    trainer.fit(module, DataLoader([batch] * args.steps, batch_size=None))
    out = {"step_s": gpu.median_gap(clock.starts, args.warmup), "peak_mem_gib": gpu.peak_memory_gib(device),
           "interrupted": trainer.interrupted}
    del trainer, module
    return out


def bare_phase(args, tok, device, batch) -> dict:
    gpu.reset_memory(device)
    model = make_rm(args, tok, device).train()
    opt = adamw_with_warmup(model.parameters(), LR, 0.0, 1)
    optimizer, sched = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if precision(args, device) == "bf16-mixed" else nullcontext()
    objective = loss_fn(args)
    starts = []
    for _ in range(args.steps):
        starts.append(gpu.now(device))
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)  # as Lightning moves it
        with autocast:
            out = model(ids, mask)  # reward (2B,)
            b = out.reward.shape[0] // 2
            loss, _ = objective(out.rows(slice(0, b)), out.rows(slice(b, None)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        sched.step()
    starts.append(gpu.now(device))
    out = {"step_s": gpu.median_gap(starts, args.warmup), "peak_mem_gib": gpu.peak_memory_gib(device)}
    del model, optimizer, sched
    return out


def main(args) -> dict:
    device = gpu.pick_device(args.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for the few fp32 matmuls left
    tok = gpu.tiny_tokenizer()
    probe = gpu.load_preset(args.model)
    with torch.device("meta"):  # sizes without memory
        meta = RewardModel.from_causal_lm(build_causal_lm(gpu.Preset({**probe, "init": "random"}), tok), head_cfg(args))
    n, n_embed = gpu.n_params(meta), meta.backbone.get_input_embeddings().weight.numel()
    vocab = meta.backbone.get_input_embeddings().num_embeddings
    batch = synthetic_pairs(args.pairs, args.seq, vocab)
    tokens = 2 * args.pairs * args.seq
    flops_per_token = 6 * n
    attn_per_token = 12 * probe["num_layers"] * probe["hidden_size"] * args.seq
    peak = gpu.peak_flops(device, args.peak_tflops)

    def figures(phase: dict) -> dict:
        tok_s = tokens / phase["step_s"]
        out = {**phase, "tokens_per_s": tok_s}
        if peak:
            out["mfu"] = flops_per_token * tok_s / peak
            out["mfu_with_attention"] = (flops_per_token + attn_per_token) * tok_s / peak
        return out

    result = {
        "benchmark": "gpu_rm", "env": gpu.environment(device), "model": args.model, "params": n,
        "params_non_embedding": n - n_embed, "objective": args.objective, "weights": args.weights,
        "precision": precision(args, device), "grad_ckpt": args.grad_ckpt, "compile": args.compile,
        "pairs": args.pairs, "seq": args.seq, "tokens_per_step": tokens, "steps": args.steps, "warmup": args.warmup,
        "peak_flops": peak,
    }
    if not args.no_baseline:
        result["bare"] = figures(bare_phase(args, tok, device, batch))
    result["inform"] = figures(lightning_phase(args, tok, device, batch))
    if "bare" in result:
        result["ratio"] = result["inform"]["step_s"] / result["bare"]["step_s"]
    i = result["inform"]
    print(f"gpu_rm {args.model} {args.weights} {args.pairs}x2x{args.seq}: inform {i['tokens_per_s']:.0f} tok/s"
          + (f", MFU {i['mfu']:.1%}" if "mfu" in i else "") + (f", peak {i['peak_mem_gib']:.1f} GiB" if i["peak_mem_gib"] else "")
          + (f", ratio to bare {result['ratio']:.3f}" if "ratio" in result else ""))
    return result


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="pythia-1.4b", help="a conf/model preset, built with random init")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=5, help="steps left out of the median")
    ap.add_argument("--weights", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing (non-reentrant)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the backbone (both phases)")
    ap.add_argument("--objective", choices=["bt", "ib"], default="bt")
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--latent-dim", type=int, default=128)
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--peak-tflops", type=float, default=None, help="override the device's dense bf16 peak")
    ap.add_argument("--no-baseline", action="store_true", help="skip the bare PyTorch loop")
    ap.add_argument("--tiny", action="store_true", help="tiny preset, 2 pairs x 32 tokens, 8 steps (CPU smoke test)")
    ap.add_argument("--out", default=None, help="write the JSON result here")
    args = ap.parse_args(argv)
    if args.tiny:
        args.model, args.pairs, args.seq, args.steps, args.warmup = "tiny", 2, 32, 8, 2
    return args


if __name__ == "__main__":
    gpu.run_main(main, parse())
