"""A data set's rows for a role of the config (sft, preference, prompts, eval_prompts, ...),
prompts as token ids, and the held-out split."""
from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from inform.data.collate import encode_prompts


def load_rows(cfg: DictConfig, role: str):
    """The data set's rows for `role` (sft, preference, prompts, eval_prompts)."""
    node = cfg.data[role]
    if node is None:
        raise ValueError(f"data.{role}: the data set {cfg.data.name!r} has no {role} rows")
    return instantiate(node)



def prompt_ids(cfg: DictConfig, tokenizer, texts, role: str) -> list[list[int]]:
    """Token ids of a data role's prompts, long ones cut or refused per `data.on_long_prompt`."""
    return encode_prompts(tokenizer, texts, cfg.data.max_prompt_tokens, cfg.data.on_long_prompt, f"data.{role}")



def holdout(rows: list, n: int) -> tuple[list, list]:
    """(train, val): the last `n` rows are validation (at most a fifth of them)."""
    n = min(n, len(rows) // 5)
    return (rows[:-n], rows[-n:]) if n else (rows, [])
