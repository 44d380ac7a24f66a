"""PPO's hyperparameters (the `ppo` config section's algorithm part; the schema adds the stage's)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PPOConfig:
    epochs: int = 4
    minibatches: int = 2
    policy_lr: float = 5e-5
    critic_lr: float = 1e-3
    clip: float = 0.2
    value_clip: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    kl_coef: float = 0.05
    kl_controller: str = "fixed"  # fixed | adaptive
    target_kl: float = 6.0
    kl_horizon: int = 10000
    temperature: float = 0.8
    top_p: float = 0.9
    max_new_tokens: int = 16
    kv_cache: str = "dynamic"  # dynamic | static (compiled decoding on a GPU: rl.rollout.sample)
    reward_clip: float = 5.0
    max_grad_norm: float = 1.0
    eval_every: int = 4
    weight_decay: float = 0.0
    ibl_coef: float = 0.0  # IBL: score - ibl_coef * Mahalanobis distance of the IB latent
    energy_coef: float = 0.0  # EPPO: score - energy_coef * |E_policy - E_sft|
