"""Tokenization and batching.

Shapes: B = batch, T = padded sequence length, P = padded prompt length.
- SFT batches are right-padded; labels are -100 on prompt and pad tokens, so the loss is
  on response tokens only.
- Preference batches stack the B chosen sequences, then the B rejected ones: (2B, T),
  right-padded, so one forward pass scores both.
- Prompt batches are left-padded (P), the layout `generate` wants.
The reward and value of a sequence are read at its last real token, found from the
attention mask (never from token ids, since pad may equal EOS in real tokenizers).
"""
from __future__ import annotations

from typing import Sequence

import torch

from inform.data.sources import DataError

IGNORE_INDEX = -100


def encode_prompts(tokenizer, prompts: Sequence[str], max_tokens: int, on_long: str = "truncate", source: str = "data") -> list[list[int]]:
    """Token ids of each prompt, keeping its last `max_tokens` tokens (the instruction end).

    `on_long="error"` stops at the first longer prompt instead, naming its row."""
    ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    if on_long == "error":
        for i, x in enumerate(ids):
            if len(x) > max_tokens:
                raise DataError(f"{source}: row {i} has a prompt of {len(x)} tokens, more than data.max_prompt_tokens={max_tokens}"
                                " (data.on_long_prompt=truncate keeps its last tokens instead)")
    return [x[-max_tokens:] for x in ids]


def encode_responses(tokenizer, responses: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Token ids of each response followed by EOS, cut to `max_tokens` (a cut one has no EOS)."""
    ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    return [(x + [tokenizer.eos_token_id])[:max_tokens] for x in ids]


def pad(seqs: Sequence[Sequence[int]], pad_id: int, side: str = "right", width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention_mask), both (B, T), padded on `side`; T = the longest row, or `width` if that is more."""
    width = max(max(len(s) for s in seqs), width or 0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if not s:
            continue
        sl = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[i, sl] = torch.as_tensor(s, dtype=torch.long)
        mask[i, sl] = 1
    return ids, mask


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B,) position of the last real token of each row, for left or right padding."""
    t = attention_mask.shape[-1]
    return t - 1 - attention_mask.flip(-1).argmax(-1)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) positions counting real tokens only, so left padding does not shift them."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


class SFTCollator:
    """Rows of (prompt_ids, response_ids) -> input_ids, attention_mask, labels (B, T)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        ids, mask = pad([p + r for p, r in rows], self.pad_id)
        labels = torch.full_like(ids, IGNORE_INDEX)
        for i, (p, r) in enumerate(rows):
            labels[i, len(p) : len(p) + len(r)] = torch.as_tensor(r)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class PreferenceCollator:
    """Rows of (prompt_ids, chosen_ids, rejected_ids) -> input_ids, attention_mask (2B, T)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[tuple[list[int], list[int], list[int]]]) -> dict[str, torch.Tensor]:
        seqs = [p + c for p, c, _ in rows] + [p + r for p, _, r in rows]
        ids, mask = pad(seqs, self.pad_id)
        return {"input_ids": ids, "attention_mask": mask}


class PromptCollator:
    """Rows of (index, prompt_ids) -> index (B,), input_ids, attention_mask (B, P) left-padded
    to the batch's longest prompt, or to `width` (one P for every batch: what a static KV
    cache needs to compile its decoding step once, `rl.rollout.sample`)."""

    def __init__(self, pad_id: int, width: int | None = None):
        self.pad_id, self.width = pad_id, width

    def __call__(self, rows: list[tuple[int, list[int]]]) -> dict[str, torch.Tensor]:
        ids, mask = pad([p for _, p in rows], self.pad_id, side="left", width=self.width)
        return {"index": torch.tensor([i for i, _ in rows]), "input_ids": ids, "attention_mask": mask}


class PromptBatches(torch.utils.data.Dataset):
    """Item i = the prompt batch of PPO iteration i: a seeded permutation per pass over the prompts.

    Indexable by iteration, so a resumed run picks up exactly the batches it has not seen.
    `fixed_width`: every batch is padded to the longest of all the prompts (ppo.kv_cache=static).
    """

    def __init__(self, prompts: list[list[int]], batch_size: int, steps: int, seed: int, pad_id: int, fixed_width: bool = False):
        if len(prompts) < batch_size:
            raise ValueError(f"ppo.batch_size {batch_size} is larger than the {len(prompts)} PPO prompts")
        self.prompts, self.batch_size, self.steps, self.seed = prompts, batch_size, steps, seed
        self.collate = PromptCollator(pad_id, max(map(len, prompts)) if fixed_width else None)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        per_pass = len(self.prompts) // self.batch_size
        pass_idx, j = divmod(i, per_pass)
        perm = torch.randperm(len(self.prompts), generator=torch.Generator().manual_seed(self.seed * 7919 + pass_idx))
        idx = perm[j * self.batch_size : (j + 1) * self.batch_size].tolist()
        return self.collate([(k, self.prompts[k]) for k in idx])


class ResumableSampler(torch.utils.data.Sampler[int]):
    """Sample indices in an order that is a function of (seed, epoch) only, and that can
    start part-way into an epoch, so a run resumed from a checkpoint sees exactly the batches
    it had not seen (Lightning calls `set_epoch`; `PreemptCheckpoint` calls `resume_at`).

    `batch_size`: items per batch of the DataLoader using it (1 for `batch_size=None`).

    With several processes (DDP, DeepSpeed) it is also the distributed sampler, in place of
    Lightning's (which would shuffle the order again and lose the position): rank r of R
    takes every R-th index of the order from the r-th on, n // R of them (so every rank runs
    the same number of steps); `set_replicas` is called with the trainer's world size and rank.
    """

    def __init__(self, n: int, shuffle: bool = True, seed: int = 0, batch_size: int = 1):
        self.n, self.shuffle, self.seed, self.batch_size = n, shuffle, seed, batch_size
        self.epoch = 0
        self.replicas, self.rank = 1, 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches already done in it)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_replicas(self, replicas: int, rank: int) -> None:
        self.replicas, self.rank = replicas, rank

    def resume_at(self, epoch: int, batches_done: int) -> None:
        self.epoch, self._resume = epoch, (epoch, batches_done)

    def __len__(self) -> int:
        return self.n // self.replicas

    def __iter__(self):  # a generator: the epoch and skip are read when iteration starts
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)).tolist()
        else:
            order = list(range(self.n))
        if self.replicas > 1:
            order = order[self.rank : len(self) * self.replicas : self.replicas]
        start = 0
        if self._resume is not None:
            if self._resume[0] == self.epoch:
                start = self._resume[1] * self.batch_size
            self._resume = None
        yield from order[start:]
