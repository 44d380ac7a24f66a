"""PPO's hyperparameters (the `ppo` config section's algorithm part; the schema adds the stage's).

No defaults here: the values of record are conf/config.yaml's `ppo` section. Build one from a
validated config with `PPOConfig.from_section(cfg.ppo)`; a test or benchmark without a composed
config can read conf/config.yaml's section (`OmegaConf.load(...).ppo`) and pass the keys it
interpolates from other groups (`max_new_tokens`) as overrides.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping


@dataclass
class PPOConfig:
    epochs: int
    minibatches: int
    policy_lr: float
    critic_lr: float
    clip: float
    value_clip: float
    gamma: float
    lam: float
    kl_coef: float
    kl_controller: str  # fixed | adaptive
    target_kl: float
    kl_horizon: int
    temperature: float
    top_p: float
    max_new_tokens: int
    kv_cache: str  # dynamic | static (compiled decoding on a GPU: rl.rollout.sample)
    reward_clip: float
    max_grad_norm: float
    eval_every: int
    weight_decay: float
    ibl_coef: float  # IBL: score - ibl_coef * Mahalanobis distance of the IB latent
    energy_coef: float  # EPPO: score - energy_coef * |E_policy - E_sft|

    @classmethod
    def from_section(cls, ppo: Mapping[str, Any], **overrides: Any) -> PPOConfig:
        """The algorithm keys of a `ppo` section (the stage's own, such as steps and batch_size,
        are left out), each replaced by `overrides` where given; a key of neither fails."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"PPOConfig has no {', '.join(unknown)}")
        return cls(**{k: overrides[k] if k in overrides else ppo[k] for k in names})
