"""What the GPU benchmarks (gpu_rm, gpu_ppo, gpu_zero3) share: presets, devices, clocks, JSON.

They run on a bare GPU machine that has torch, transformers and lightning but may lack the
project's other requirements (hydra, omegaconf, datasets, deepspeed: carried as wheels by
benchmarks/gpu/run.sh). So presets are read with OmegaConf when it imports and with PyYAML
otherwise, and `datasets` (imported by inform.data, never used by these benchmarks) is
replaced by a stub that fails on use if the carried wheel does not import there.
"""
from __future__ import annotations

import importlib.machinery
import json
import os
import platform
import statistics
import sys
import time
import traceback
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS_STUBBED = False
try:
    import datasets  # noqa: F401
except Exception as err:  # a wrong pyarrow/fsspec on the device: inform.data only needs the name
    stub = types.ModuleType("datasets")
    stub.__spec__ = importlib.machinery.ModuleSpec("datasets", None)

    def _missing(name, _err=repr(err)):
        raise ImportError(f"datasets is not importable here ({_err}); the GPU benchmarks do not use it")

    stub.__getattr__ = _missing
    sys.modules["datasets"] = stub
    DATASETS_STUBBED = True

import torch  # noqa: E402

from inform.models.causal_lm import build_causal_lm  # noqa: E402
from inform.models.tokenizer import train_tiny_tokenizer  # noqa: E402

# Dense bf16 tensor-core peak (no sparsity), FLOP/s, by a substring of torch.cuda.get_device_name.
PEAK_BF16 = [("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("GH200", 989e12), ("A100", 312e12),
             ("L40S", 362e12), ("A10G", 70e12)]


class Preset(dict):
    """A conf/model preset with attribute access, like the DictConfig the library is given."""

    def __getattr__(self, key):
        return self.get(key)


def load_preset(name: str, **overrides) -> Preset:
    """conf/model/<name>.yaml as a Preset, with `overrides` applied (e.g. init="random")."""
    path = ROOT / "conf" / "model" / f"{name}.yaml"
    try:
        from omegaconf import OmegaConf

        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except ImportError:
        import yaml

        data = yaml.safe_load(path.read_text())
    return Preset({**data, **overrides})


def tiny_tokenizer():
    """The tiny local BPE tokenizer (no hub): EOS id 0, pad id 1. The real presets keep their
    own vocabulary size, so only the ids it emits are fewer; the compute is the real model's."""
    return train_tiny_tokenizer(400)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    return torch.device(name)


def build_lm(preset: Preset, tok, device: torch.device, seed: int = 0):
    """build_causal_lm with its tensors created (and randomly initialized) on `device`:
    a 1.4B model is drawn on the GPU in about a second instead of ~20 s on the CPU."""
    with torch.device(device):
        return build_causal_lm(preset, tok, seed=seed)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device: torch.device) -> float:
    """A wall-clock reading after the device's queued work has finished."""
    sync(device)
    return time.perf_counter()


def median_gap(starts: list[float], skip: int) -> float:
    """Median time between consecutive step starts, after the first `skip` (warm-up) steps."""
    s = starts[skip:]
    if len(s) < 2:
        raise ValueError(f"need at least {skip + 2} timed steps, got {len(starts)}")
    return statistics.median(b - a for a, b in zip(s, s[1:]))


def peak_flops(device: torch.device, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for key, v in PEAK_BF16 if key in name), None)


def reset_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def host_peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def environment(device: torch.device) -> dict:
    import lightning
    import transformers

    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "transformers": transformers.__version__, "lightning": lightning.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "datasets_stubbed": DATASETS_STUBBED,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": " ".join(sys.argv),
    }
    if device.type == "cuda":
        env["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return env


def write_json(path: str | None, result: dict) -> None:
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


def run_main(main, args) -> None:
    """Run `main(args)`; on failure still write the JSON, with the error, and exit 1."""
    try:
        write_json(args.out, main(args))
    except BaseException as err:  # OOM, a DeepSpeed assertion, KeyboardInterrupt from `timeout`
        write_json(args.out, {"error": f"{type(err).__name__}: {err}"[:2000], "traceback": traceback.format_exc()[-4000:],
                              "argv": " ".join(sys.argv)})
        raise SystemExit(1)
