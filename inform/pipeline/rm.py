"""Stage `rm`: train a reward model with the configured objective; export backbone + head."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from inform.data.collate import PreferenceCollator, encode_prompts, encode_responses
from inform.models.causal_lm import build_causal_lm, load_causal_lm
from inform.models.reward_model import RewardModel
from inform.models.tokenizer import load_tokenizer, tokenizer_from
from inform.modules.reward import RewardModule
from inform.pipeline import common
from inform.pipeline.cache import build_once, plain, read_metrics, spec_hash, write_json
from inform.pipeline.sft import ensure_sft, sft_spec

log = logging.getLogger("inform")


def pair_examples(tokenizer, rows, cfg: DictConfig) -> list[tuple[list[int], list[int], list[int]]]:
    """(prompt_ids, chosen_ids, rejected_ids) per preference row."""
    p = encode_prompts(tokenizer, rows["prompt"], cfg.data.max_prompt_tokens)
    c = encode_responses(tokenizer, rows["chosen"], cfg.data.max_response_tokens)
    r = encode_responses(tokenizer, rows["rejected"], cfg.data.max_response_tokens)
    return list(zip(p, c, r))


def fit_reward_model(
    cfg: DictConfig, out: Path, *, stage: str, model_cfg: DictConfig, section: DictConfig,
    objective: DictConfig, rows, init_path: Path | None = None,
) -> None:
    """Train a reward model on preference rows and export it to `out` (shared by rm and gold)."""
    common.seed_stage(cfg, stage)
    if init_path is None:
        tokenizer = load_tokenizer(model_cfg)
        lm = build_causal_lm(model_cfg, tokenizer, seed=cfg.seed)
    else:
        tokenizer = tokenizer_from(init_path)
        lm = load_causal_lm(str(init_path), tokenizer, model_cfg.dtype, model_cfg.gradient_checkpointing)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = RewardModel.from_causal_lm(lm, plain(objective.head))
    del lm

    train, val = common.holdout(pair_examples(tokenizer, rows, cfg), section.val_size)
    collate = PreferenceCollator(tokenizer.pad_token_id)
    g = torch.Generator().manual_seed(cfg.seed)
    train_dl = DataLoader(train, batch_size=section.batch_size, shuffle=True, collate_fn=collate, generator=g)
    val_dl = DataLoader(val, batch_size=section.batch_size, collate_fn=collate) if val else None

    save_dir = common.stage_dir(cfg, stage)
    loggers = common.make_loggers(cfg, stage, save_dir)
    module = RewardModule(
        model, instantiate(objective.loss), lr=section.lr, weight_decay=section.weight_decay,
        warmup_steps=section.warmup_steps,
    )
    trainer = common.make_trainer(cfg, stage, save_dir, loggers, max_epochs=section.epochs, max_steps=section.max_steps)
    trainer.fit(module, train_dl, val_dl)
    model.save_pretrained(out, tokenizer)
    metrics = common.metrics_of(trainer)
    where = common.finish_loggers(loggers)
    write_json(out / "metrics.json", {**metrics, "runs": where})
    common.report(stage, where, save_dir)


def rm_spec(cfg: DictConfig) -> dict:
    """What the proxy RM depends on (its cache key)."""
    spec = {
        "reward": plain(cfg.reward), "objective": plain(cfg.objective), "rm": plain(cfg.rm), "seed": cfg.seed,
        "max_tokens": [cfg.data.max_prompt_tokens, cfg.data.max_response_tokens],
        "precision": str(cfg.trainer.get("precision")),
    }
    spec["data"] = plain(cfg.data.preference)
    if cfg.rm.init == "sft":
        spec["init"] = "sft-" + spec_hash(sft_spec(cfg))
    return spec


def ensure_rm(cfg: DictConfig) -> Path:
    """The proxy reward model's export folder, trained unless cached."""
    if cfg.rm.data != "human":
        raise NotImplementedError("rm.data=labels needs the label stage of the gold-RM pipeline")
    init_path = ensure_sft(cfg) if cfg.rm.init == "sft" else None

    def build(out: Path) -> None:
        rows = common.load_rows(cfg, "preference")
        fit_reward_model(cfg, out, stage="rm", model_cfg=cfg.reward, section=cfg.rm, objective=cfg.objective, rows=rows, init_path=init_path)

    return build_once(cfg.paths.artifacts, "rm", rm_spec(cfg), build)


def run_rm(cfg: DictConfig) -> dict:
    path = ensure_rm(cfg)
    log.info("rm: export -> %s", path)
    return {"export": str(path), **read_metrics(path)}
