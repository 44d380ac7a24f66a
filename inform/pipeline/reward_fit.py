"""Training a reward model on preference rows and exporting it: shared by the `gold` and `rm` stages."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from inform.config.plain import plain
from inform.data.collate import PreferenceCollator, encode_responses
from inform.data.rows import holdout, prompt_ids
from inform.models.causal_lm import build_causal_lm, load_causal_lm
from inform.models.reward_model import RewardModel
from inform.models.tokenizer import load_tokenizer, tokenizer_from
from inform.modules.reward import RewardModule
from inform.runtime import ranks
from inform.runtime.files import write_json
from inform.runtime.run_dir import seed_stage, stage_dir
from inform.runtime.trainer import (
    FullWeights,
    fit,
    make_loader,
    make_trainer,
    metrics_of,
    stage_device,
    trainable_dtype,
)
from inform.tracking.loggers import finish_loggers, make_loggers, report

SCORE_STATS = "score_stats.json"


def pair_examples(tokenizer, rows, cfg: DictConfig) -> list[tuple[list[int], list[int], list[int]]]:
    """(prompt_ids, chosen_ids, rejected_ids) per preference row."""
    p = prompt_ids(cfg, tokenizer, rows["prompt"], "preference")
    c = encode_responses(tokenizer, rows["chosen"], cfg.data.max_response_tokens)
    r = encode_responses(tokenizer, rows["rejected"], cfg.data.max_response_tokens)
    return list(zip(p, c, r))


def fit_reward_model(
    cfg: DictConfig, out: Path, *, stage: str, model_cfg: DictConfig, section: DictConfig,
    objective: DictConfig, rows, init_path: Path | None = None, fingerprint: str = "",
    data_seed: int | None = None, head_seed: int | None = None,
) -> None:
    """Train a reward model on preference rows and export it to `out` (shared by rm and gold).

    `data_seed` (data order) and `head_seed` (head init) default to `cfg.seed`; ensemble
    members and WARM's members set them."""
    data_seed = cfg.seed if data_seed is None else data_seed
    head_seed = cfg.seed if head_seed is None else head_seed
    seed_stage(cfg, stage)
    dtype = trainable_dtype(cfg, model_cfg)
    if init_path is None:
        tokenizer = load_tokenizer(model_cfg)
        lm = build_causal_lm(model_cfg, tokenizer, seed=cfg.seed, dtype=dtype)
    else:
        tokenizer = tokenizer_from(init_path)
        lm = load_causal_lm(str(init_path), tokenizer, dtype, model_cfg.gradient_checkpointing)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(head_seed)
        model = RewardModel.from_causal_lm(lm, plain(objective.head))
    del lm

    train, val = holdout(pair_examples(tokenizer, rows, cfg), section.val_size)
    collate = PreferenceCollator(tokenizer.pad_token_id)
    train_dl = make_loader(train, section.batch_size, collate, shuffle=True, seed=data_seed)
    val_dl = DataLoader(val, batch_size=section.batch_size, collate_fn=collate) if val else None

    save_dir = stage_dir(cfg, stage)
    loggers = make_loggers(cfg, stage, save_dir)
    module = RewardModule(
        model, instantiate(objective.loss), lr=section.lr, weight_decay=section.weight_decay,
        warmup_steps=section.warmup_steps, on_nonfinite=cfg.on_nonfinite,
    )
    full = FullWeights("model")
    trainer = make_trainer(
        cfg, stage, save_dir, loggers, [full], train_loader=train_dl, fingerprint=fingerprint, max_epochs=section.epochs,
        max_steps=section.max_steps,
    )
    fit(trainer, module, save_dir, train_dl, val_dl)
    if ranks.rank() > 0:  # rank 0 exports (inform/runtime/ranks.py)
        return
    model.save_pretrained(out, tokenizer, state_dict=full.state)
    if full.state is not None:  # ZeRO-3 left shards in `model`: score with the export
        model = RewardModel.from_pretrained(out, model_cfg.dtype)
    stats = score_stats(model, train, tokenizer.pad_token_id, device=stage_device(cfg))
    write_json(out / SCORE_STATS, stats)
    metrics = {**metrics_of(trainer), "rm/score_mean": stats["mean"], "rm/score_std": stats["std"]}
    where = finish_loggers(loggers)
    write_json(out / "metrics.json", {**metrics, "runs": where})
    report(stage, where, save_dir)


@torch.no_grad()
def score_pairs(model: RewardModel, examples: list, pad_id: int, batch_size: int = 32,
                device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen, r_rejected), each (N,) float32 on the CPU, for (prompt, chosen, rejected) ids.

    Pairs are scored longest first (less padding); padding never changes a score, since the
    reward is read at the last real token with positions counted over real tokens."""
    model.eval().to(device)
    collate = PreferenceCollator(pad_id)
    order = sorted(range(len(examples)), key=lambda i: -max(len(examples[i][1]), len(examples[i][2])) - len(examples[i][0]))
    r_c, r_r = torch.empty(len(examples)), torch.empty(len(examples))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx]).items()}
        r = model(**batch).reward.float().cpu()  # (2b,): chosen rows, then rejected rows
        r_c[idx], r_r[idx] = r[: len(idx)], r[len(idx) :]
    return r_c, r_r


@torch.no_grad()
def pair_accuracy(model: RewardModel, examples: list, pad_id: int, batch_size: int = 256) -> float:
    """Share of (prompt, chosen, rejected) examples where r(chosen) > r(rejected) (a tie is wrong)."""
    r_chosen, r_rejected = score_pairs(model, examples, pad_id, batch_size)
    return (r_chosen > r_rejected).float().mean().item()


@torch.no_grad()
def score_stats(model: RewardModel, examples: list, pad_id: int, batch_size: int = 256,
                device: str | torch.device = "cpu") -> dict:
    """Mean and std of the raw reward over every response of the training pairs.

    PPO standardizes the score with them, so each objective's reward enters PPO on the same
    scale (for the pipeline these are the SFT policy's own samples)."""
    model.eval().to(device)
    collate = PreferenceCollator(pad_id)
    rewards = torch.cat([
        model(**{k: v.to(device) for k, v in collate(examples[i : i + batch_size]).items()}).reward.float().cpu()
        for i in range(0, len(examples), batch_size)
    ])
    model.cpu()
    return {"mean": rewards.mean().item(), "std": rewards.std().item(), "n": rewards.numel()}


def load_score_stats(path: Path) -> dict:
    return json.loads((Path(path) / SCORE_STATS).read_text())
