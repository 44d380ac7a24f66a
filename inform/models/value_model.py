"""The PPO critic: its own backbone and a per-token value head, V(s_t) = w . h_t + b."""
from __future__ import annotations

import torch
from torch import nn

from inform.data.collate import position_ids
from inform.models.reward_model import RewardModel


class ValueModel(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Linear | None = None):
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.head = head if head is not None else nn.Linear(hidden, 1)
        if head is None:
            nn.init.normal_(self.head.weight, std=1.0 / (hidden + 1) ** 0.5)
            nn.init.zeros_(self.head.bias)

    @classmethod
    def from_causal_lm(cls, lm: nn.Module) -> "ValueModel":
        """Critic initialized from the SFT policy (the paper's choice, after Zheng et al. 2023)."""
        return cls(lm.base_model)

    @classmethod
    def from_reward_model(cls, rm: RewardModel) -> "ValueModel":
        """Critic initialized from the proxy RM: its backbone, and its scalar head as the value head."""
        head = None
        if rm.head_cfg["kind"] == "scalar":
            head = nn.Linear(rm.backbone.config.hidden_size, 1)
            head.load_state_dict(rm.head.linear.state_dict())
        return cls(rm.backbone, head)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(b, T) values of every position."""
        h = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask), use_cache=False
        ).last_hidden_state  # (b, T, H)
        return self.head(h).squeeze(-1)
