"""Plain containers from OmegaConf nodes: what hashes and JSON files take."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def plain(x: Any) -> Any:
    """Resolved plain containers (dict/list) for a config node; any other value unchanged."""
    if isinstance(x, DictConfig) or OmegaConf.is_config(x):
        return OmegaConf.to_container(x, resolve=True)
    return x
