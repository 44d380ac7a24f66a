"""Stage `sft`: fine-tune the policy model on demonstrations; export it with save_pretrained."""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from torch.utils.data import DataLoader

from inform.data.collate import SFTCollator, encode_responses
from inform.models.causal_lm import build_causal_lm
from inform.models.tokenizer import load_tokenizer
from inform.modules.sft import SFTModule
from inform.pipeline import common
from inform.pipeline.cache import build_once, plain, read_metrics, spec_hash, write_json

log = logging.getLogger("inform")


def sft_spec(cfg: DictConfig) -> dict:
    """What the SFT export depends on (its cache key)."""
    return {
        "policy": plain(cfg.policy), "data": plain(cfg.data.sft), "sft": plain(cfg.sft), "seed": cfg.seed,
        "max_tokens": [cfg.data.max_prompt_tokens, cfg.data.max_response_tokens],
        "precision": str(cfg.trainer.get("precision")),
    }


def train_sft(cfg: DictConfig, out: Path) -> None:
    common.seed_stage(cfg, "sft")
    tokenizer = load_tokenizer(cfg.policy)
    model = build_causal_lm(cfg.policy, tokenizer, seed=cfg.seed)
    rows = common.load_rows(cfg, "sft")
    examples = list(
        zip(
            common.prompt_ids(cfg, tokenizer, rows["prompt"], "sft"),
            encode_responses(tokenizer, rows["response"], cfg.data.max_response_tokens),
        )
    )
    train, val = common.holdout(examples, cfg.sft.val_size)
    collate = SFTCollator(tokenizer.pad_token_id)
    train_dl = common.make_loader(train, cfg.sft.batch_size, collate, shuffle=True, seed=cfg.seed)
    val_dl = DataLoader(val, batch_size=cfg.sft.batch_size, collate_fn=collate) if val else None

    save_dir = common.stage_dir(cfg, "sft")
    loggers = common.make_loggers(cfg, "sft", save_dir)
    module = SFTModule(
        model, lr=cfg.sft.lr, weight_decay=cfg.sft.weight_decay, warmup_steps=cfg.sft.warmup_steps, on_nonfinite=cfg.on_nonfinite
    )
    trainer = common.make_trainer(
        cfg, "sft", save_dir, loggers, train_loader=train_dl, fingerprint=spec_hash(sft_spec(cfg)),
        max_steps=cfg.sft.max_steps, max_epochs=cfg.sft.epochs,
        val_check_interval=cfg.sft.val_every, check_val_every_n_epoch=None,
    )
    common.fit(trainer, module, save_dir, train_dl, val_dl)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    metrics = common.metrics_of(trainer)
    where = common.finish_loggers(loggers)
    write_json(out / "metrics.json", {**metrics, "runs": where})
    common.report("sft", where, save_dir)


def ensure_sft(cfg: DictConfig) -> Path:
    """The SFT export folder (a transformers model + tokenizer), trained unless cached."""
    return build_once(cfg.paths.artifacts, "sft", sft_spec(cfg), lambda out: train_sft(cfg, out))


def run_sft(cfg: DictConfig) -> dict:
    path = ensure_sft(cfg)
    log.info("sft: export -> %s", path)
    return {"export": str(path), **read_metrics(path)}
