"""Stage `sft`: fine-tune the policy model on demonstrations; export it with save_pretrained.

`rm.init=sft` and `gold.init=sft` start a reward model from SFT-trained weights of *its own*
preset: the policy's export when the presets are the same, else the same SFT recipe run on
the reward preset (`ensure_sft(cfg, "reward")`, logged as stage `sft_reward`). At tiny scale
that stands in for the pretrained checkpoint of another size (proxy RMs of 3 sizes)."""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from torch.utils.data import DataLoader

from inform.data.collate import SFTCollator, encode_responses
from inform.models.causal_lm import build_causal_lm
from inform.models.tokenizer import load_tokenizer
from inform.modules.sft import SFTModule
from inform.pipeline import common, ranks
from inform.pipeline.cache import build_once, plain, read_metrics, spec_hash, trainer_numerics, write_json

log = logging.getLogger("inform")


def sft_role(cfg: DictConfig, role: str) -> str:
    """The role whose SFT run serves `role`: a preset equal to the policy's shares its export."""
    return "policy" if role == "policy" or plain(cfg[role]) == plain(cfg.policy) else role


def sft_spec(cfg: DictConfig, role: str = "policy") -> dict:
    """What the SFT export of the `role` preset (policy, reward, gold_model) depends on."""
    return {
        "policy": plain(cfg[sft_role(cfg, role)]), "data": plain(cfg.data.sft), "sft": plain(cfg.sft), "seed": cfg.seed,
        "max_tokens": [cfg.data.max_prompt_tokens, cfg.data.max_response_tokens],
        **trainer_numerics(cfg),
    }


def train_sft(cfg: DictConfig, out: Path, role: str = "policy") -> None:
    stage = "sft" if role == "policy" else f"sft_{role.split('_')[0]}"
    common.seed_stage(cfg, stage)
    tokenizer = load_tokenizer(cfg[role])
    model = build_causal_lm(cfg[role], tokenizer, seed=cfg.seed, dtype=common.trainable_dtype(cfg, cfg[role]))
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

    save_dir = common.stage_dir(cfg, stage)
    loggers = common.make_loggers(cfg, stage, save_dir)
    module = SFTModule(
        model, lr=cfg.sft.lr, weight_decay=cfg.sft.weight_decay, warmup_steps=cfg.sft.warmup_steps, on_nonfinite=cfg.on_nonfinite
    )
    full = common.FullWeights("model")
    trainer = common.make_trainer(
        cfg, stage, save_dir, loggers, [full], train_loader=train_dl, fingerprint=spec_hash(sft_spec(cfg, role)),
        max_steps=cfg.sft.max_steps, max_epochs=cfg.sft.epochs,
        val_check_interval=cfg.sft.val_every, check_val_every_n_epoch=None,
    )
    common.fit(trainer, module, save_dir, train_dl, val_dl)
    if ranks.rank() > 0:  # rank 0 exports (inform/pipeline/ranks.py)
        return
    model.save_pretrained(out, state_dict=full.state)
    tokenizer.save_pretrained(out)
    metrics = common.metrics_of(trainer)
    where = common.finish_loggers(loggers)
    write_json(out / "metrics.json", {**metrics, "runs": where})
    common.report(stage, where, save_dir)


def ensure_sft(cfg: DictConfig, role: str = "policy") -> Path:
    """The SFT export folder (a transformers model + tokenizer) of the `role` preset, trained unless cached."""
    role = sft_role(cfg, role)
    return build_once(cfg.paths.artifacts, "sft", sft_spec(cfg, role), lambda out: train_sft(cfg, out, role))


def run_sft(cfg: DictConfig) -> dict:
    path = ensure_sft(cfg)
    log.info("sft: export -> %s", path)
    return {"export": str(path), **read_metrics(path)}
