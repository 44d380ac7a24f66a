"""Stage `label`: the SFT policy samples 2 responses per instruction, the gold RM ranks them,
and a share `label_noise` of the labels is flipped (InfoRM sec. 4.1; 25% in the paper).

Output: `pairs.jsonl` (prompt, chosen, rejected, gold scores, flipped) and `stats.json`
(the gold RM's mean/std on these SFT samples, used to standardize `reward/gold`; counts).
Exactly round(label_noise * n_pairs) labels are flipped, chosen by a seeded permutation.
Pairs whose two samples are identical carry no preference and are dropped.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
import torch
from omegaconf import DictConfig

from inform.data.collate import PromptCollator
from inform.data.rows import load_rows, prompt_ids
from inform.models.causal_lm import load_causal_lm
from inform.models.reward_model import RewardModel
from inform.models.scorer import RewardScorer
from inform.models.tokenizer import tokenizer_from
from inform.rl.rollout import sample
from inform.runtime.files import write_json
from inform.runtime.run_dir import seed_stage
from inform.runtime.trainer import stage_device

log = logging.getLogger("inform")
PAIRS, STATS = "pairs.jsonl", "stats.json"


def label_prompts(cfg: DictConfig) -> list[str]:
    """`data.label_prompts` when the data set has them (AlpacaFarm: the preference split's
    instructions, as in the paper), else the first `label.n_prompts` of `data.prompts`."""
    if cfg.data.label_prompts is not None:
        return load_rows(cfg, "label_prompts")["prompt"][: cfg.label.n_prompts]
    return load_rows(cfg, "prompts")["prompt"][: cfg.label.n_prompts]


def ppo_prompts(cfg: DictConfig) -> list[str]:
    """The unlabeled instructions PPO trains on: never those the label stage used."""
    rows = load_rows(cfg, "prompts")["prompt"]
    return rows if cfg.data.label_prompts is not None else rows[cfg.label.n_prompts :]


def flip_labels(n_pairs: int, noise: float, seed: int) -> set[int]:
    """Indices of the round(noise * n_pairs) pairs whose label is flipped."""
    k = round(noise * n_pairs)
    return set(torch.randperm(n_pairs, generator=torch.Generator().manual_seed(seed)).tolist()[:k])


@torch.no_grad()
def make_labels(cfg: DictConfig, out: Path, up: dict, fingerprint: str) -> None:
    sft_path, gold_path = up["sft"], up["gold"]
    seed_stage(cfg, "label")
    device = stage_device(cfg)
    tok = tokenizer_from(sft_path)
    policy = load_causal_lm(str(sft_path), tok, cfg.policy.dtype).to(device).eval()
    gold = RewardScorer(
        RewardModel.from_pretrained(gold_path, cfg.gold_model.dtype).to(device), tokenizer_from(gold_path), tok,
        max_prompt_tokens=cfg.data.max_prompt_tokens, max_response_tokens=cfg.data.max_response_tokens,
    )
    texts = label_prompts(cfg)
    n = len(texts)
    ids = prompt_ids(cfg, tok, texts, "label_prompts" if cfg.data.label_prompts is not None else "prompts")
    collate = PromptCollator(tok.pad_token_id)
    samples: list[tuple[int, str, float]] = []  # (prompt index, response text, gold score)
    half = max(1, cfg.label.batch_size // 2)
    for start in range(0, n, half):
        idx = [i for i in range(start, min(n, start + half)) for _ in range(2)]  # 2 samples per prompt
        batch = collate([(i, ids[i]) for i in idx])
        ro = sample(
            policy, batch["input_ids"].to(device), batch["attention_mask"].to(device), max_new_tokens=cfg.label.max_new_tokens,
            temperature=cfg.label.temperature, top_p=cfg.label.top_p, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
        )
        scores = gold.raw(ro.sequences, ro.attention_mask, ro.prompt_len).reward.tolist()
        for i, resp, m, s in zip(idx, ro.responses, ro.response_mask, scores):
            samples.append((i, tok.decode(resp[m.bool()], skip_special_tokens=True), s))

    pairs = []
    for (i, a, sa), (_, b, sb) in zip(samples[0::2], samples[1::2]):
        if a != b:
            chosen, rejected = ((a, sa), (b, sb)) if sa >= sb else ((b, sb), (a, sa))
            pairs.append({"prompt": texts[i], "chosen": chosen[0], "rejected": rejected[0],
                          "gold_chosen": chosen[1], "gold_rejected": rejected[1], "flipped": False})
    for j in flip_labels(len(pairs), cfg.label_noise, cfg.seed):
        p = pairs[j]
        p["chosen"], p["rejected"] = p["rejected"], p["chosen"]
        p["gold_chosen"], p["gold_rejected"] = p["gold_rejected"], p["gold_chosen"]
        p["flipped"] = True
    with open(out / PAIRS, "w") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")
    gold_scores = torch.tensor([s for _, _, s in samples])
    stats = {
        "gold_mean": gold_scores.mean().item(), "gold_std": gold_scores.std().item(), "n_prompts": n,
        "n_pairs": len(pairs), "n_identical": n - len(pairs), "n_flipped": sum(p["flipped"] for p in pairs),
        "label_noise": cfg.label_noise,
    }
    write_json(out / STATS, stats)
    write_json(out / "metrics.json", stats)
    log.info("label: %d pairs from %d prompts (%d identical dropped), %d flipped", len(pairs), n, stats["n_identical"], stats["n_flipped"])


def read_pairs(path: Path) -> datasets.Dataset:
    lines = (Path(path) / PAIRS).read_text().splitlines()
    return datasets.Dataset.from_list([json.loads(line) for line in lines if line])


def read_stats(path: Path) -> dict:
    return json.loads((Path(path) / STATS).read_text())
