"""A frozen reward model that scores the policy's samples: proxy RM in PPO, gold RM in eval.

    score = (r - mean) / std  -  missing_eos_penalty * [no EOS]

`mean` and `std` are the RM's raw-score statistics on the SFT samples it was trained on
(saved by the rm/label stages), so every objective's score enters PPO on the same scale;
the IB reward's raw scale is logged beside it. A reward model with another tokenizer than
the policy's (e.g. a Vicuna gold RM scoring a Pythia policy) re-tokenizes the decoded text.
"""
from __future__ import annotations

import torch

from inform.data.collate import encode_prompts, encode_responses, pad
from inform.models.causal_lm import check_vocab
from inform.models.reward_model import RewardModel, RewardOutput


class RewardScorer:
    def __init__(
        self, model: RewardModel, tokenizer, policy_tokenizer, mean: float = 0.0, std: float = 1.0,
        missing_eos_penalty: float = 0.0, max_prompt_tokens: int = 512, max_response_tokens: int = 512,
    ):
        check_vocab(model.backbone, tokenizer, "reward model")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer, self.policy_tokenizer = tokenizer, policy_tokenizer
        self.mean, self.std = float(mean), float(std) if std > 0 else 1.0
        self.missing_eos_penalty = missing_eos_penalty
        self.max_prompt_tokens, self.max_response_tokens = max_prompt_tokens, max_response_tokens
        self.same_vocab = tokenizer.get_vocab() == policy_tokenizer.get_vocab()

    def to(self, device) -> "RewardScorer":
        self.model.to(device)
        return self

    @torch.no_grad()
    def raw(self, sequences: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int) -> RewardOutput:
        """The RM's output on policy sequences (b, P + R): left-padded prompts, then responses."""
        if self.same_vocab:
            return self.model(sequences, attention_mask)
        dec = lambda ids, m: self.policy_tokenizer.decode(ids[m.bool()], skip_special_tokens=True)  # noqa: E731
        prompts = [dec(s[:prompt_len], m[:prompt_len]) for s, m in zip(sequences, attention_mask)]
        responses = [dec(s[prompt_len:], m[prompt_len:]) for s, m in zip(sequences, attention_mask)]
        p = encode_prompts(self.tokenizer, prompts, self.max_prompt_tokens)
        r = encode_responses(self.tokenizer, responses, self.max_response_tokens)
        ids, mask = pad([a + b for a, b in zip(p, r)], self.tokenizer.pad_token_id)
        return self.model(ids.to(sequences.device), mask.to(sequences.device))

    def normalize(self, raw_reward: torch.Tensor, has_eos: torch.Tensor) -> torch.Tensor:
        """(b,) standardized score, minus the missing-EOS penalty."""
        return (raw_reward - self.mean) / self.std - self.missing_eos_penalty * (~has_eos).to(raw_reward.dtype)
