"""Stage `sft`: fine-tune the policy model on demonstrations; export it with save_pretrained.

`rm.init=sft` and `gold.init=sft` start a reward model from SFT-trained weights of *its own*
preset: the policy's export when the presets are the same, else the same SFT recipe run on
the reward preset (stages `sft_reward` and `sft_gold` of the stage table). At tiny scale
that stands in for the pretrained checkpoint of another size (proxy RMs of 3 sizes)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from torch.utils.data import DataLoader

from inform.config.plain import plain
from inform.data.collate import SFTCollator, encode_responses
from inform.data.rows import holdout, load_rows, prompt_ids
from inform.models.causal_lm import build_causal_lm
from inform.models.tokenizer import load_tokenizer
from inform.modules.sft import SFTModule
from inform.runtime import ranks
from inform.runtime.files import write_json
from inform.runtime.run_dir import seed_stage, stage_dir
from inform.runtime.trainer import (
    FullWeights,
    fit,
    make_loader,
    make_trainer,
    metrics_of,
    trainable_dtype,
)
from inform.tracking.loggers import finish_loggers, make_loggers, report

ROLE_STAGE = {"policy": "sft", "reward": "sft_reward", "gold_model": "sft_gold"}  # model preset -> its SFT stage


def sft_stage_for(cfg: DictConfig, role: str) -> str:
    """The SFT stage that serves `role`: a preset equal to the policy's shares the policy's export."""
    return "sft" if role == "policy" or plain(cfg[role]) == plain(cfg.policy) else ROLE_STAGE[role]


def sft_export(up: dict) -> Path | None:
    """The SFT export among a stage's upstream folders (a reward model's `init=sft`), or None."""
    found = [path for name, path in up.items() if name in ROLE_STAGE.values()]
    return found[0] if found else None


def train_sft(cfg: DictConfig, out: Path, up: dict, fingerprint: str, role: str = "policy") -> None:
    """Train the `role` preset on `data.sft`'s demonstrations; export model + tokenizer to `out`."""
    stage = ROLE_STAGE[role]
    seed_stage(cfg, stage)
    tokenizer = load_tokenizer(cfg[role])
    model = build_causal_lm(cfg[role], tokenizer, seed=cfg.seed, dtype=trainable_dtype(cfg, cfg[role]))
    rows = load_rows(cfg, "sft")
    examples = list(
        zip(
            prompt_ids(cfg, tokenizer, rows["prompt"], "sft"),
            encode_responses(tokenizer, rows["response"], cfg.data.max_response_tokens),
        )
    )
    train, val = holdout(examples, cfg.sft.val_size)
    collate = SFTCollator(tokenizer.pad_token_id)
    train_dl = make_loader(train, cfg.sft.batch_size, collate, shuffle=True, seed=cfg.seed)
    val_dl = DataLoader(val, batch_size=cfg.sft.batch_size, collate_fn=collate) if val else None

    save_dir = stage_dir(cfg, stage)
    loggers = make_loggers(cfg, stage, save_dir)
    module = SFTModule(
        model, lr=cfg.sft.lr, weight_decay=cfg.sft.weight_decay, warmup_steps=cfg.sft.warmup_steps, on_nonfinite=cfg.on_nonfinite
    )
    full = FullWeights("model")
    trainer = make_trainer(
        cfg, stage, save_dir, loggers, [full], train_loader=train_dl, fingerprint=fingerprint,
        max_steps=cfg.sft.max_steps, max_epochs=cfg.sft.epochs,
        val_check_interval=cfg.sft.val_every, check_val_every_n_epoch=None,
    )
    fit(trainer, module, save_dir, train_dl, val_dl)
    if ranks.rank() > 0:  # rank 0 exports (inform/runtime/ranks.py)
        return
    model.save_pretrained(out, state_dict=full.state)
    tokenizer.save_pretrained(out)
    metrics = metrics_of(trainer)
    where = finish_loggers(loggers)
    write_json(out / "metrics.json", {**metrics, "runs": where})
    report(stage, where, save_dir)

