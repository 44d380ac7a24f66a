"""Data sources in their public schemas, normalized to three row shapes.

    sft         {prompt, response}
    preference  {prompt, chosen, rejected}
    prompts     {prompt}

Every loader takes `path`: a hub id (loaded through `datasets`), or a local .json / .jsonl /
.parquet file or folder in the same public schema (what the tests use, since no hub is
reachable there). A missing column or an empty text stops with the file and row named.

Public schemas followed:
- AlpacaFarm `tatsu-lab/alpaca_farm`: instructions {instruction, input, output}
  (splits sft / preference / unlabeled / val), human preferences
  {instruction, input, output_1, output_2, preference in {1, 2}}.
- Anthropic HH `Anthropic/hh-rlhf`: {chosen, rejected}, whole dialogues
  "\\n\\nHuman: ...\\n\\nAssistant: ..."; the prompt is everything up to and including the
  last "\\n\\nAssistant:".
- TL;DR: comparisons `openai/summarize_from_feedback` (config "comparisons")
  {info: {post, title, subreddit}, summaries: [{text}, {text}], choice}; demonstrations
  `CarperAI/openai_summarize_tldr` {prompt, label}.
"""
from __future__ import annotations

from pathlib import Path
import datasets

from inform.data import synthetic

HH_ASSISTANT = "\n\nAssistant:"
ALPACA_TEMPLATE = "Human: {instruction}\n\nAssistant:"
ALPACA_TEMPLATE_INPUT = "Human: {instruction}\n{input}\n\nAssistant:"
TLDR_TEMPLATE = "SUBREDDIT: r/{subreddit}\nTITLE: {title}\nPOST: {post}\nTL;DR:"


class DataError(ValueError):
    """A data file or row that cannot be used; the message names the file and row."""


# --------------------------------------------------------------------------- raw loading
def load_raw(path: str, name: str | None = None, split: str = "train", data_dir: str | None = None) -> datasets.Dataset:
    """A split from a local file/folder or a hub id."""
    local = Path(path).expanduser()
    if local.is_file():
        kind = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}.get(local.suffix)
        if kind is None:
            raise DataError(f"{local}: unsupported file type {local.suffix!r} (use .json, .jsonl, .parquet or .csv)")
        if local.stat().st_size == 0:
            raise DataError(f"{local}: the file is empty")
        try:
            return datasets.load_dataset(kind, data_files=str(local), split="train")
        except Exception as err:  # datasets wraps parse errors in several types
            raise DataError(f"{local}: could not be read as {kind}: {err}") from err
    if local.is_dir():
        return datasets.load_dataset(str(local), name, split=split, data_dir=data_dir)
    if path.startswith((".", "/", "~")) or path.endswith((".json", ".jsonl", ".parquet", ".csv")):
        raise DataError(f"{path}: no such data file or folder")
    return datasets.load_dataset(path, name, split=split, data_dir=data_dir)


def require_columns(ds: datasets.Dataset, columns: list[str], source: str) -> None:
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataError(
            f"{source}: missing column {', '.join(repr(c) for c in missing)} "
            f"(has {', '.join(ds.column_names) or 'no columns'})"
        )
    if len(ds) == 0:
        raise DataError(f"{source}: no rows")


def check_rows(rows: list[dict], text_keys: list[str], source: str) -> list[dict]:
    """Stop at the first empty text, naming the row (0-based, as in the file)."""
    for i, row in enumerate(rows):
        for key in text_keys:
            value = row.get(key)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{source}: row {i} has an empty {key!r}")
    return rows


def _finish(rows: list[dict], keys: list[str], source: str, limit: int | None) -> datasets.Dataset:
    rows = rows[:limit] if limit else rows
    return datasets.Dataset.from_list(check_rows(rows, keys, source), features=None)


def _source(path: str, name: str | None, split: str) -> str:
    return f"{path}" + (f" [{name}]" if name else "") + f" split={split}"


# --------------------------------------------------------------------------- synthetic
# Each source draws its rows from `seed + 1000 * data_seed` (conf/data/synthetic.yaml passes
# `data_seed: ${data.seed}`): data.seed 0 is the data set every run has used, another re-draws it.
def _data_rng_seed(seed: int, data_seed: int) -> int:
    return seed + 1000 * data_seed


def synthetic_sft(n: int = 20000, seed: int = 1, limit: int | None = None, data_seed: int = 0) -> datasets.Dataset:
    # an empty response (only EOS) is a legitimate, low-quality demonstration here
    return _finish(synthetic.demonstrations(n, _data_rng_seed(seed, data_seed)), ["prompt"], "synthetic sft", limit)


def synthetic_preferences(n: int = 20000, seed: int = 2, limit: int | None = None, data_seed: int = 0) -> datasets.Dataset:
    rows = synthetic.human_preferences(n, _data_rng_seed(seed, data_seed))
    return _finish(rows, ["prompt"], "synthetic preferences", limit)


def synthetic_prompts(n: int = 2000, seed: int = 3, limit: int | None = None, data_seed: int = 0) -> datasets.Dataset:
    return _finish(synthetic.prompts(n, _data_rng_seed(seed, data_seed)), ["prompt"], "synthetic prompts", limit)


# --------------------------------------------------------------------------- AlpacaFarm
def _alpaca_prompt(row: dict, template: str, template_input: str) -> str:
    extra = (row.get("input") or "").strip()
    return (template_input if extra else template).format(instruction=row["instruction"].strip(), input=extra)


def alpaca_farm_sft(
    path: str = "tatsu-lab/alpaca_farm", name: str | None = "alpaca_instructions", split: str = "sft",
    template: str = ALPACA_TEMPLATE, template_input: str = ALPACA_TEMPLATE_INPUT, limit: int | None = None,
) -> datasets.Dataset:
    source, ds = _source(path, name, split), load_raw(path, name, split)
    require_columns(ds, ["instruction", "output"], source)
    rows = [{"prompt": _alpaca_prompt(r, template, template_input), "response": " " + r["output"].strip()} for r in ds]
    return _finish(rows, ["prompt", "response"], source, limit)


def alpaca_farm_preferences(
    path: str = "tatsu-lab/alpaca_farm", name: str | None = "alpaca_human_preference", split: str = "preference",
    template: str = ALPACA_TEMPLATE, template_input: str = ALPACA_TEMPLATE_INPUT, limit: int | None = None,
) -> datasets.Dataset:
    source, ds = _source(path, name, split), load_raw(path, name, split)
    require_columns(ds, ["instruction", "output_1", "output_2", "preference"], source)
    rows = []
    for i, r in enumerate(ds):
        if r["preference"] not in (1, 2):
            raise DataError(f"{source}: row {i} has preference {r['preference']!r}, expected 1 or 2")
        a, b = (r["output_1"], r["output_2"]) if r["preference"] == 1 else (r["output_2"], r["output_1"])
        rows.append({"prompt": _alpaca_prompt(r, template, template_input), "chosen": " " + a.strip(), "rejected": " " + b.strip()})
    return _finish(rows, ["prompt", "chosen", "rejected"], source, limit)


def alpaca_farm_prompts(
    path: str = "tatsu-lab/alpaca_farm", name: str | None = "alpaca_instructions", split: str = "unlabeled",
    template: str = ALPACA_TEMPLATE, template_input: str = ALPACA_TEMPLATE_INPUT, limit: int | None = None,
) -> datasets.Dataset:
    source, ds = _source(path, name, split), load_raw(path, name, split)
    require_columns(ds, ["instruction"], source)
    return _finish([{"prompt": _alpaca_prompt(r, template, template_input)} for r in ds], ["prompt"], source, limit)


# --------------------------------------------------------------------------- Anthropic HH
def split_dialogue(text: str) -> tuple[str, str]:
    """(prompt ending in '\\n\\nAssistant:', final assistant reply) of an HH dialogue."""
    cut = text.rfind(HH_ASSISTANT)
    if cut < 0:
        raise ValueError("no '\\n\\nAssistant:' turn")
    cut += len(HH_ASSISTANT)
    return text[:cut], text[cut:]


def _hh_rows(path: str, data_dir: str | None, split: str) -> tuple[list[dict], str]:
    source = _source(path, data_dir, split)
    ds = load_raw(path, None, split, data_dir=data_dir)
    require_columns(ds, ["chosen", "rejected"], source)
    rows = []
    for i, r in enumerate(ds):
        try:
            prompt, chosen = split_dialogue(r["chosen"])
            prompt_r, rejected = split_dialogue(r["rejected"])
        except ValueError as err:
            raise DataError(f"{source}: row {i}: {err}") from err
        if prompt_r != prompt:  # a handful of public rows differ before the last turn: skip them
            continue
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows, source


def hh_rlhf_preferences(path: str = "Anthropic/hh-rlhf", data_dir: str | None = "helpful-base", split: str = "train", limit: int | None = None) -> datasets.Dataset:
    rows, source = _hh_rows(path, data_dir, split)
    return _finish(rows, ["prompt", "chosen", "rejected"], source, limit)


def hh_rlhf_sft(path: str = "Anthropic/hh-rlhf", data_dir: str | None = "helpful-base", split: str = "train", limit: int | None = None) -> datasets.Dataset:
    rows, source = _hh_rows(path, data_dir, split)
    return _finish([{"prompt": r["prompt"], "response": r["chosen"]} for r in rows], ["prompt", "response"], source, limit)


def hh_rlhf_prompts(path: str = "Anthropic/hh-rlhf", data_dir: str | None = "helpful-base", split: str = "test", limit: int | None = None) -> datasets.Dataset:
    rows, source = _hh_rows(path, data_dir, split)
    return _finish([{"prompt": r["prompt"]} for r in rows], ["prompt"], source, limit)


# --------------------------------------------------------------------------- TL;DR
def _tldr_prompt(info: dict, template: str) -> str:
    return template.format(subreddit=info.get("subreddit") or "", title=info.get("title") or "", post=info.get("post") or "")


def tldr_preferences(
    path: str = "openai/summarize_from_feedback", name: str | None = "comparisons", split: str = "train",
    template: str = TLDR_TEMPLATE, limit: int | None = None,
) -> datasets.Dataset:
    source, ds = _source(path, name, split), load_raw(path, name, split)
    require_columns(ds, ["info", "summaries", "choice"], source)
    rows = []
    for i, r in enumerate(ds):
        texts = [s["text"] for s in r["summaries"]]
        if len(texts) != 2 or r["choice"] not in (0, 1):
            raise DataError(f"{source}: row {i} needs 2 summaries and choice 0/1")
        rows.append({"prompt": _tldr_prompt(r["info"], template), "chosen": " " + texts[r["choice"]].strip(), "rejected": " " + texts[1 - r["choice"]].strip()})
    return _finish(rows, ["prompt", "chosen", "rejected"], source, limit)


def tldr_sft(path: str = "CarperAI/openai_summarize_tldr", split: str = "train", limit: int | None = None) -> datasets.Dataset:
    source, ds = _source(path, None, split), load_raw(path, None, split)
    require_columns(ds, ["prompt", "label"], source)
    rows = [{"prompt": r["prompt"], "response": " " + r["label"].strip()} for r in ds]
    return _finish(rows, ["prompt", "response"], source, limit)


def tldr_prompts(path: str = "CarperAI/openai_summarize_tldr", split: str = "test", limit: int | None = None) -> datasets.Dataset:
    source, ds = _source(path, None, split), load_raw(path, None, split)
    require_columns(ds, ["prompt"], source)
    return _finish([{"prompt": r["prompt"]} for r in ds], ["prompt"], source, limit)

