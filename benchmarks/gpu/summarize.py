"""The GPU benchmarks' JSON results (benchmarks/gpu/run.sh) as markdown for benchmarks/RESULTS.md.

    python benchmarks/gpu/summarize.py benchmarks/out/gpu
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ORDER = ["rm_bf16", "rm_fp32", "rm_bf16_compile", "ppo", "ppo_static", "zero3"]


def gib(x) -> str:
    return f"{x:.1f} GiB" if x is not None else "n/a"


def pct(x) -> str:
    return f"{x:.1%}" if x is not None else "n/a"


def rm_row(name: str, r: dict) -> str:
    what = (f"RM step `{name}`: {r['model']}, {r['weights']} weights ({r['precision']}), {r['pairs']}x2x{r['seq']} tokens"
            + (", grad ckpt" if r["grad_ckpt"] else "") + (", torch.compile" if r["compile"] else ""))

    def side(p: dict | None) -> str:
        if p is None:
            return ""
        return f"{p['tokens_per_s']:,.0f} tok/s, MFU {pct(p.get('mfu'))}, {p['step_s'] * 1e3:.0f} ms, peak {gib(p['peak_mem_gib'])}"

    ratio = f"**{r['ratio']:.3f}**" if "ratio" in r else ""
    return f"| {what} | {side(r.get('bare'))} | {side(r['inform'])} | {ratio} |"


def ppo_row(r: dict) -> str:
    s = r["steady"] or r["iterations"][-1]
    p = r["params"]
    what = (f"PPO iteration: {r['policy']} policy ({p['policy'] / 1e9:.2f}B) + critic ({p['critic'] / 1e9:.2f}B) "
            f"{r['weights']} ({r['precision']}{', grad ckpt' if r['grad_ckpt'] else ''}), reference {r['frozen_dtype']}, "
            f"{r['rm']} RM ({p['rm'] / 1e9:.2f}B) {r['frozen_dtype']}; {r['prompts']} prompts x ({r['prompt_len']} + {r['new_tokens']}), "
            f"{r['epochs']} epochs x {r['minibatches']} minibatches, {r.get('kv_cache', 'dynamic')} KV cache")
    figures = (f"rollout {s['rollout_s']:.2f} s (generate {s['generate_s']:.2f} s, {s['generated_tokens_per_s']:,.0f} "
               f"generated tok/s), update {s['update_s']:.2f} s, iteration {s['iteration_s']:.2f} s "
               f"(first: {r['iterations'][0]['iteration_s']:.2f} s); peak {gib(r['peak_mem_gib'])} "
               f"(weights {gib(r['static_mem_gib'])})")
    return f"| {what} | | {figures} | |"


def zero3_row(r: dict) -> str:
    offload = ("optimizer offloaded to CPU" if r["offload_optimizer"] else "no offload") + (
        ", params offloaded" if r["offload_params"] else "")
    what = (f"ZeRO-3 RM step: {r['model']} ({r['params'] / 1e9:.2f}B), {offload}, {r['master']} master weights, "
            f"{r['optimizer']}, {r['pairs']}x2x{r['seq']} tokens" + (", grad ckpt" if r["grad_ckpt"] else ""))
    steps = ", ".join(f"{t:.2f}" for t in r["step_times_s"])
    figures = (f"step {r['step_s']:.2f} s (steps: {steps} s), {r['tokens_per_s']:,.0f} tok/s, MFU {pct(r.get('mfu'))}; "
               f"GPU peak {gib(r['peak_mem_gib'])}, host peak RSS {gib(r['host_peak_rss_gib'])}; setup {r['setup_s']:.0f} s")
    return f"| {what} | | {figures} | |"


def main(folder: str) -> str:
    out, env = [], None
    results = {p.stem: json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))}
    names = [n for n in ORDER if n in results] + [n for n in results if n not in ORDER]
    rows, errors = [], []
    for name in names:
        r = results[name]
        if "error" in r:
            errors.append(f"- `{name}` failed: {r['error'].splitlines()[0][:300]}")
            continue
        env = env or r.get("env")
        kind = r.get("benchmark")
        try:
            rows.append(rm_row(name, r) if kind == "gpu_rm" else ppo_row(r) if kind == "gpu_ppo" else zero3_row(r))
        except (KeyError, TypeError, IndexError) as err:  # a result of another version: say so, keep the rest
            errors.append(f"- `{name}`: cannot summarize ({type(err).__name__}: {err}); see {name}.json")
    if env:
        out.append(f"Device: {env['device']}" + (f" ({env['gpu_memory_gib']} GiB)" if "gpu_memory_gib" in env else "")
                   + f", {env['cpu_count']} CPUs; torch {env['torch']} (CUDA {env['cuda']}), transformers "
                   f"{env['transformers']}, lightning {env['lightning']}, Python {env['python']}; {env['date']}.")
        out.append("")
    if rows:
        out += ["| benchmark | bare | inform | ratio |", "|---|---|---|---|", *rows]
    out += ["", *errors] if errors else []
    return "\n".join(out)


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/out/gpu"))
