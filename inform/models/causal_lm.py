"""Causal LMs from a `conf/model/*.yaml` preset: built from its numbers, or loaded by hub id/path.

A preset names the architecture (`gpt_neox` for Pythia, `llama` for Vicuna) and its numbers,
so the same file can (a) build a random-init model offline (the tiny model; benchmarks),
(b) count parameters on the meta device without memory or download, and (c) load the real
weights from `source` with `AutoModelForCausalLM`.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GPTNeoXConfig, LlamaConfig, PretrainedConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    return DTYPES[name]


def architecture_config(model_cfg, vocab_size: int | None = None) -> PretrainedConfig:
    """The transformers config of a preset's architecture numbers."""
    vocab = vocab_size or model_cfg.vocab_size
    common = dict(
        vocab_size=vocab,
        hidden_size=model_cfg.hidden_size,
        num_hidden_layers=model_cfg.num_layers,
        num_attention_heads=model_cfg.num_heads,
        intermediate_size=model_cfg.intermediate_size,
        max_position_embeddings=model_cfg.max_position_embeddings,
        tie_word_embeddings=model_cfg.tie_word_embeddings,
    )
    if model_cfg.arch == "gpt_neox":
        return GPTNeoXConfig(rotary_pct=model_cfg.rotary_pct, use_parallel_residual=True, **common)
    if model_cfg.arch == "llama":
        return LlamaConfig(num_key_value_heads=model_cfg.num_kv_heads or model_cfg.num_heads, **common)
    raise ValueError(f"model.arch: unknown architecture {model_cfg.arch!r} (gpt_neox or llama)")


def count_parameters(model_cfg) -> int:
    """Parameters of the preset's architecture, built on the meta device (no memory, no download)."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(architecture_config(model_cfg))
    return sum(p.numel() for p in model.parameters())


def build_causal_lm(model_cfg, tokenizer, seed: int = 0, dtype: str | None = None):
    """The preset's causal LM: random init when `source` is null or `init: random`, else loaded.

    Random init draws from its own RNG seeded with `seed`, so it is the same model for the
    same seed whatever ran before. `dtype`: instead of the preset's (a model to train).
    """
    dtype = torch_dtype(dtype or model_cfg.dtype)
    if model_cfg.source is None or model_cfg.init == "random":
        config = architecture_config(model_cfg, vocab_size=model_cfg.vocab_size or len(tokenizer))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            model_cfg.source, revision=model_cfg.revision, dtype=dtype,
            trust_remote_code=model_cfg.trust_remote_code,
        )
    return prepare(model, tokenizer, model_cfg.gradient_checkpointing, where=f"{model_cfg.name} ({model_cfg.source or 'built here'})")


def load_causal_lm(path: str, tokenizer, dtype: str = "float32", gradient_checkpointing: bool = False):
    """A causal LM exported by a stage (`save_pretrained` folder)."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a model export (no config.json); delete the folder to rebuild the stage")
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype(dtype))
    except Exception as err:
        raise RuntimeError(f"{folder}: the model export cannot be read, it may be truncated or corrupt "
                           f"({type(err).__name__}: {err}); delete the folder to rebuild the stage") from err
    return prepare(model, tokenizer, gradient_checkpointing, where=str(folder))


def check_vocab(model, tokenizer, where: str) -> None:
    """A tokenizer with ids beyond the model's embedding table belongs to another model."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ValueError(f"{where}: the tokenizer has {len(tokenizer)} tokens but the model's embedding only {rows} rows: "
                         "they come from different models")


def prepare(model, tokenizer, gradient_checkpointing: bool = False, where: str = "model"):
    check_vocab(model, tokenizer, where)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    if gradient_checkpointing:  # newer transformers renamed it (the old name warns, and goes in v6)
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model
