"""The RL modules' frozen models (reference policy, proxy and gold RMs) are rebuilt from their
exports, so their weights stay out of PPO's and RLOO's checkpoints."""
from __future__ import annotations

FROZEN = ("ref.", "proxy_model.", "gold_model.")  # state-dict prefixes of the frozen models


def drop_frozen(checkpoint: dict) -> None:
    """on_save_checkpoint: keep only the trained weights."""
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith(FROZEN)}


def restore_frozen(module, checkpoint: dict) -> None:
    """on_load_checkpoint: put the module's own frozen weights back, so the strict load finds
    every key. Under DeepSpeed there is no Lightning state_dict: its engine loads the weights."""
    if "state_dict" in checkpoint:
        checkpoint["state_dict"].update({k: v for k, v in module.state_dict().items() if k.startswith(FROZEN)})
