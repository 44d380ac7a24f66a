"""Sampling responses and reading their log-probs and values.

Layout of a rollout (b sequences): `sequences` (b, P + R) = left-padded prompts (P) then
responses (R), each response cut after its first EOS and right-padded. `response_mask`
(b, R) is 1 on response tokens up to and including the EOS. Log-probs and values of the
response tokens come from positions P-1 ... P+R-2 (the state before each token).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import CompileConfig

from inform.data.collate import position_ids

# kv_cache="static": transformers compiles the decoding step; dynamic=False keeps one graph
# specialized to each (batch, width) shape, as measured, where its default (None) would turn
# to dynamic shapes at the second shape (the eval batch), a graph nobody has timed.
STATIC_COMPILE = CompileConfig(dynamic=False)


@dataclass
class Rollout:
    sequences: torch.Tensor  # (b, P + R)
    attention_mask: torch.Tensor  # (b, P + R)
    response_mask: torch.Tensor  # (b, R)
    prompt_len: int  # P
    has_eos: torch.Tensor  # (b,) bool

    @property
    def responses(self) -> torch.Tensor:  # (b, R)
        return self.sequences[:, self.prompt_len :]

    def rows(self, idx: torch.Tensor) -> "Rollout":
        return Rollout(self.sequences[idx], self.attention_mask[idx], self.response_mask[idx], self.prompt_len, self.has_eos[idx])


def response_mask_from(responses: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask (b, R): 1 up to and including the first EOS, has_eos (b,))."""
    is_eos = responses == eos_id
    has_eos = is_eos.any(-1)
    first = torch.where(has_eos, is_eos.float().argmax(-1), torch.full_like(has_eos, responses.shape[1], dtype=torch.long))
    ar = torch.arange(responses.shape[1], device=responses.device)
    return (ar[None, :] <= first[:, None]).long(), has_eos


@torch.no_grad()
def sample(
    policy, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, max_new_tokens: int, temperature: float = 1.0,
    top_p: float = 1.0, eos_id: int, pad_id: int, do_sample: bool = True, kv_cache: str = "dynamic",
) -> Rollout:
    """Sample one response per prompt with the KV cache (the policy in eval mode, no gradients).

    kv_cache "dynamic": transformers' default cache, grown each step. "static": a cache of
    fixed size, (B, heads, P + max_new_tokens, head_dim), which on a GPU lets transformers
    compile the decoding step, once per shape (B, P): ~16 s at 1.4B. The callers pad every
    batch to one width P (the longest prompt of their data: `PromptCollator(width=...)`), and
    the prompt columns that are padding in every row are dropped again here, so the rollout is
    what the dynamic cache gives. In inform's PPO on an H200 at Pythia-1.4B (64 prompts x 128
    new tokens) it made 7.3k generated tokens/s against the dynamic cache's 3.1k, steps that
    are bound by Python and kernel-launch overhead (benchmarks/RESULTS.md). On the CPU
    nothing is compiled, and it samples the same tokens as the dynamic cache (tested)."""
    if kv_cache not in ("dynamic", "static"):
        raise ValueError(f"kv_cache must be 'dynamic' or 'static' (got {kv_cache!r})")
    was_training = policy.training
    policy.eval()
    static = {"cache_implementation": "static", "compile_config": STATIC_COMPILE} if kv_cache == "static" else {}
    out = policy.generate(
        input_ids=prompt_ids, attention_mask=prompt_mask, max_new_tokens=max_new_tokens, do_sample=do_sample,
        temperature=temperature if do_sample else None, top_p=top_p if do_sample else None, top_k=0 if do_sample else None,
        eos_token_id=eos_id, pad_token_id=pad_id, use_cache=True, **static,
    )
    policy.train(was_training)
    p = prompt_ids.shape[1]
    responses = out[:, p:]
    if kv_cache == "static":  # drop the columns padded for the cache's fixed shape: (b, P) -> (b, P')
        lead = int((prompt_mask.sum(0) == 0).cumprod(0).sum())  # leading columns with no real token
        prompt_ids, prompt_mask, p = prompt_ids[:, lead:], prompt_mask[:, lead:], p - lead
    mask, has_eos = response_mask_from(responses, eos_id)
    responses = torch.where(mask.bool(), responses, torch.full_like(responses, pad_id))
    sequences = torch.cat([prompt_ids, responses], dim=1)
    return Rollout(sequences, torch.cat([prompt_mask, mask], dim=1), mask, p, has_eos)


def response_logits(model, rollout: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """(b, R, V) logits for each response token, divided by the sampling temperature."""
    logits = model(
        input_ids=rollout.sequences, attention_mask=rollout.attention_mask,
        position_ids=position_ids(rollout.attention_mask), use_cache=False,
    ).logits
    return logits[:, rollout.prompt_len - 1 : -1].float() / temperature


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """(b, R) log pi(y_t | ...) of the given tokens under (b, R, V) logits."""
    return torch.gather(F.log_softmax(logits, dim=-1), 2, tokens.unsqueeze(-1)).squeeze(-1)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """(b, R) entropy H(pi(. | s_t)) of each position's distribution."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def response_values(critic, rollout: Rollout) -> torch.Tensor:
    """(b, R) critic values V(s_t) of the state before each response token."""
    return critic(rollout.sequences, rollout.attention_mask)[:, rollout.prompt_len - 1 : -1].float()
