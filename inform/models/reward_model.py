"""Reward models: a causal-LM backbone read at the last real token, and a head.

    h = backbone(prompt + response)[last real token]             (B, H)

Scalar head (Bradley-Terry, BSR):   r = w . h + b
IB head (InfoRM, seed 001 sec. 3.2): an encoder gives the Gaussian p(s | x),
    [mu, logvar] = W_enc h + b_enc                                (B, 2D) -> (B, D), (B, D)
    s = mu + exp(logvar / 2) * eps,  eps ~ N(0, I)   while training;  s = mu in eval
    r = g_psi(s)   (a linear decoder, or the paper's MLP)          (B,)
The latent used by CSI and the plots is `mu` (IB) or `h` (scalar heads).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel

from inform.data.collate import last_token_index, position_ids
from inform.models.causal_lm import torch_dtype

META_FILE = "reward_model.json"
HEAD_FILE = "head.safetensors"


class RewardOutput(NamedTuple):
    """A NamedTuple, not a dataclass: DeepSpeed ZeRO-3 finds the tensors of a module's output
    only in tuples, lists and dicts, and hooks its backward through them (with a dataclass it
    warned "unknown inputs or outputs type" on the GPU run and skipped the hooks)."""

    reward: torch.Tensor  # (B,)
    hidden: torch.Tensor  # (B, H) backbone state at the last real token
    mu: torch.Tensor | None = None  # (B, D) IB posterior mean
    logvar: torch.Tensor | None = None  # (B, D) IB posterior log-variance

    @property
    def latent(self) -> torch.Tensor:
        """What CSI clusters: the IB mean, or the last hidden state of a scalar RM."""
        return self.mu if self.mu is not None else self.hidden

    def rows(self, sl: slice) -> "RewardOutput":
        pick = lambda t: None if t is None else t[sl]  # noqa: E731
        return RewardOutput(self.reward[sl], self.hidden[sl], pick(self.mu), pick(self.logvar))


class ScalarHead(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.linear.weight, std=1.0 / math.sqrt(hidden_size + 1))
        nn.init.zeros_(self.linear.bias)

    def forward(self, h: torch.Tensor) -> RewardOutput:  # h: (B, H)
        return RewardOutput(reward=self.linear(h).squeeze(-1), hidden=h)


class IBHead(nn.Module):
    def __init__(self, hidden_size: int, latent_dim: int, decoder: str = "linear"):
        super().__init__()
        self.encoder = nn.Linear(hidden_size, 2 * latent_dim)
        if decoder == "linear":
            self.decoder = nn.Linear(latent_dim, 1)
        elif decoder == "mlp":
            self.decoder = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.GELU(), nn.Linear(latent_dim, 1))
        else:
            raise ValueError(f"objective.head.decoder: {decoder!r} is neither 'linear' nor 'mlp'")

    def forward(self, h: torch.Tensor) -> RewardOutput:  # h: (B, H)
        mu, logvar = self.encoder(h).chunk(2, dim=-1)  # (B, D) each
        s = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return RewardOutput(reward=self.decoder(s).squeeze(-1), hidden=h, mu=mu, logvar=logvar)


def make_head(head_cfg: dict, hidden_size: int) -> nn.Module:
    kind = head_cfg["kind"]
    if kind == "scalar":
        return ScalarHead(hidden_size)
    if kind == "ib":
        return IBHead(hidden_size, int(head_cfg["latent_dim"]), head_cfg.get("decoder", "linear"))
    raise ValueError(f"objective.head.kind: unknown head {kind!r} (scalar or ib)")


class RewardModel(nn.Module):
    """backbone (a transformers base model) + head; `forward` scores whole sequences."""

    def __init__(self, backbone: nn.Module, head_cfg: dict):
        super().__init__()
        self.backbone = backbone
        self.head_cfg = dict(head_cfg)
        self.head = make_head(self.head_cfg, backbone.config.hidden_size)
        self.head.to(next(backbone.parameters()).dtype)

    @classmethod
    def from_causal_lm(cls, lm: nn.Module, head_cfg: dict) -> "RewardModel":
        """Reuse a causal LM's body (its `base_model`) as the backbone; the LM head is dropped."""
        return cls(lm.base_model, head_cfg)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, H) last-layer states, positions counted over real tokens only."""
        out = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
            use_cache=False,
        )
        return out.last_hidden_state

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> RewardOutput:
        states = self.hidden_states(input_ids, attention_mask)  # (B, T, H)
        last = last_token_index(attention_mask)  # (B,)
        h = states[torch.arange(states.shape[0], device=states.device), last]  # (B, H)
        return self.head(h)

    # ------------------------------------------------------------------ save / load
    def save_pretrained(self, path: str | Path, tokenizer=None, state_dict: dict | None = None) -> None:
        """`state_dict`: this model's full weights when the model itself holds shards (ZeRO-3)."""
        path = Path(path)
        state = self.state_dict() if state_dict is None else state_dict
        part = lambda prefix: {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}  # noqa: E731
        self.backbone.save_pretrained(path / "backbone", state_dict=part("backbone.") if state_dict is not None else None)
        save_file({k: v.contiguous() for k, v in part("head.").items()}, str(path / HEAD_FILE))
        (path / META_FILE).write_text(json.dumps({"head": self.head_cfg}, indent=2))
        if tokenizer is not None:
            tokenizer.save_pretrained(path)

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: str = "float32") -> "RewardModel":
        path = Path(path)
        meta_file = path / META_FILE
        if not meta_file.is_file():
            raise FileNotFoundError(f"{path}: not a reward-model export (no {META_FILE})")
        try:
            head_cfg = json.loads(meta_file.read_text())["head"]
            backbone = AutoModel.from_pretrained(path / "backbone", dtype=torch_dtype(dtype))
            model = cls(backbone, head_cfg)
            model.head.load_state_dict(load_file(str(path / HEAD_FILE)))
        except Exception as err:
            raise RuntimeError(f"{path}: the reward-model export cannot be read, it may be truncated or corrupt "
                               f"({type(err).__name__}: {err}); delete the folder to rebuild the stage") from err
        return model
