"""Stage `bon`: best-of-n of the SFT policy against the proxy RM, scored by the gold RM.

The SFT policy samples `bon.n_samples` (N) responses to each of the first `eval.n_prompts`
eval prompts (`eval.temperature`, `eval.top_p`); the proxy and gold RMs score each, both
standardized as in the PPO evals (gold on the label stage's SFT samples, minus
`eval.missing_eos_penalty` without EOS; the proxy on its training samples, same penalty).
For every n in `bon.ns`, `inform.rl.best_of_n` gives the unbiased estimate of the best-of-n
proxy and gold reward over the N samples, against the analytic KL log n - (n - 1)/n: the
over-optimization curve of best-of-n, PPO's baseline (Gao et al. 2022).

Exports `bon.json` (the rows and the sampling set-up), `scores.npz` (the (P, N) proxy, gold
and has-EOS arrays, to recompute any n <= N), `best_of_n.png` and `metrics.json`.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from inform.data.collate import PromptCollator
from inform.data.rows import load_rows, prompt_ids
from inform.models.causal_lm import load_causal_lm
from inform.models.tokenizer import tokenizer_from
from inform.pipeline.scorers import gold_scorer, proxy_scorer
from inform.report.curves import plt, save_figure
from inform.rl.best_of_n import bon_curve
from inform.rl.rollout import sample
from inform.runtime.files import write_json
from inform.runtime.run_dir import seed_stage, stage_dir
from inform.runtime.trainer import stage_device
from inform.tracking.loggers import finish_loggers, log_image, make_loggers

log = logging.getLogger("inform")
CURVE, RESULT, SCORES = "best_of_n.png", "bon.json", "scores.npz"
METRICS = ("bon/kl", "bon/proxy", "bon/gold")


@torch.no_grad()
def sample_and_score(cfg: DictConfig, sft: Path, rm: list[Path], gold: Path, labels: Path) -> dict[str, torch.Tensor]:
    """N samples per eval prompt, scored: proxy, gold (P, N) float, has_eos (P, N) bool, length (P, N)."""
    seed_stage(cfg, "bon")  # the sampling noise depends on (seed, stage) only
    device = stage_device(cfg)
    tok = tokenizer_from(sft)
    policy = load_causal_lm(str(sft), tok, cfg.policy.dtype).to(device).eval()
    proxy = proxy_scorer(cfg, rm, tok, cfg.eval.missing_eos_penalty).to(device)
    gold_ = gold_scorer(cfg, gold, labels, tok).to(device)
    texts = load_rows(cfg, "eval_prompts")["prompt"][: cfg.eval.n_prompts]
    ids = prompt_ids(cfg, tok, texts, "eval_prompts")
    n_prompts, n_samples = len(ids), cfg.bon.n_samples
    total = n_prompts * n_samples  # row k = sample k % N of prompt k // N
    out = {k: torch.zeros(total) for k in ("proxy", "gold", "length")}
    out["has_eos"] = torch.zeros(total, dtype=torch.bool)
    collate = PromptCollator(tok.pad_token_id)
    n_batches = -(-total // cfg.eval.batch_size)
    for b, start in enumerate(range(0, total, cfg.eval.batch_size)):
        rows = range(start, min(total, start + cfg.eval.batch_size))
        batch = collate([(k, ids[k // n_samples]) for k in rows])
        ro = sample(
            policy, batch["input_ids"].to(device), batch["attention_mask"].to(device), max_new_tokens=cfg.ppo.max_new_tokens,
            temperature=cfg.eval.temperature, top_p=cfg.eval.top_p, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
        )
        for name, scorer in (("proxy", proxy), ("gold", gold_)):
            raw = scorer.raw(ro.sequences, ro.attention_mask, ro.prompt_len).reward  # (b,)
            out[name][rows.start : rows.stop] = scorer.normalize(raw, ro.has_eos).float().cpu()
        out["has_eos"][rows.start : rows.stop] = ro.has_eos.cpu()
        out["length"][rows.start : rows.stop] = ro.response_mask.sum(-1).float().cpu()
        log.info("bon: batch %d/%d sampled and scored (%d of %d samples)", b + 1, n_batches, rows.stop, total)
    return {k: v.view(n_prompts, n_samples) for k, v in out.items()}


def plot_best_of_n(rows: list[dict], path: Path, title: str) -> Path:
    """Gold and proxy reward of best-of-n against its analytic KL, each point labelled with n."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    kl = [r["bon/kl"] for r in rows]
    for key, label, style in (("bon/proxy", "proxy RM (what picks the best)", {"color": "tab:blue", "marker": "o"}),
                              ("bon/gold", "gold RM", {"color": "tab:red", "marker": "s"})):
        ys = [r[key] for r in rows]
        ax.plot(kl, ys, label=label, markersize=4.5, linewidth=1.3, **style)
        for x, y, r in zip(kl, ys, rows):
            ax.annotate(f"n={r['n']}", (x, y), textcoords="offset points", xytext=(4, 5), fontsize=7, color=style["color"])
    ax.set_xlabel("KL(best-of-n || SFT) = log n - (n-1)/n (nats)")
    ax.set_ylabel("reward (SD units of the SFT samples)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


def log_rows(loggers: list, rows: list[dict]) -> None:
    """One logged step per n (step = n): bon/kl, bon/proxy, bon/gold."""
    for row in rows:
        for lg in loggers:
            lg.log_metrics({k: row[k] for k in METRICS}, step=row["n"])
    for lg in loggers:
        lg.save()


def summarize(rows: list[dict], scores: dict[str, torch.Tensor]) -> dict:
    """Each n's row as `bon/<metric>@<n>`, the gold peak, and the samples' EOS rate and length."""
    out = {f"{k}@{r['n']}": r[k] for r in rows for k in METRICS}
    peak = max(rows, key=lambda r: r["bon/gold"])
    out.update({"gold_peak/n": peak["n"], "gold_peak/kl": peak["bon/kl"], "gold_peak/gold": peak["bon/gold"],
                "bon/eos_rate": scores["has_eos"].float().mean().item(), "bon/response_len": scores["length"].mean().item()})
    return out


def build_bon(cfg: DictConfig, out: Path, up: dict, fingerprint: str) -> None:
    save_dir = stage_dir(cfg, "bon")
    scores = sample_and_score(cfg, up["sft"], up["proxy"], up["gold"], up["label"])
    rows = bon_curve(scores["proxy"], scores["gold"], cfg.bon.ns)
    n_prompts, n_samples = scores["proxy"].shape
    setup = {"n_prompts": n_prompts, "n_samples": n_samples, "temperature": cfg.eval.temperature, "top_p": cfg.eval.top_p,
             "max_new_tokens": cfg.ppo.max_new_tokens, "missing_eos_penalty": cfg.eval.missing_eos_penalty, "seed": cfg.seed}
    write_json(out / RESULT, {"rows": rows, "config": setup})
    np.savez(out / SCORES, **{k: v.numpy() for k, v in scores.items()})
    title = (f"best-of-n of SFT: {cfg.objective.name} proxy, label noise {cfg.label_noise}, seed {cfg.seed}\n"
             f"N={n_samples} samples x {n_prompts} prompts (unbiased estimator)")
    curve = plot_best_of_n(rows, save_dir / CURVE, title)
    shutil.copy(curve, out / CURVE)
    loggers = make_loggers(cfg, "bon", save_dir)
    log_rows(loggers, rows)
    log_image(loggers, "curves/best_of_n", curve, step=rows[-1]["n"])
    where = finish_loggers(loggers)
    write_json(out / "metrics.json", {**summarize(rows, scores), "runs": where})
    for r in rows:
        log.info("bon: n=%-4d KL %.3f  proxy %+.3f  gold %+.3f", r["n"], r["bon/kl"], r["bon/proxy"], r["bon/gold"])
    for k, v in where.items():
        log.info("bon: %s run -> %s", k, v)
