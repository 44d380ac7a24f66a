"""The stage table's self-check (`audit=true`): every config key a build reads must be covered
by the stage's hash, or a stale artifact could be reused after that key changes.

While a stage builds, every value read from the run's config is recorded by its dotted key:
all reads of a DictConfig child go through `DictConfig._get_node` (attribute, item, `get`,
`in`, iteration, `to_container`, Hydra's `instantiate`), a list's items through
`ListConfig._get_node` (recorded as the list's key). Containers are not recorded, only the
values under them: reading `cfg.trainer.accelerator` records that key, not all of `trainer`.
A copy of the whole config (`to_container` of the root: W&B logs it with every run) reads
no value for the build, so it is not recorded.
After the build, a key that neither the stage's hash (its own keys and its upstream stages')
nor the runtime keys (`graph.RUNTIME_KEYS`) cover fails the build, before its artifact is
committed. The test suite runs every stage with it on; a new stage is checked by running it
once with `audit=true`.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable

from omegaconf import DictConfig, ListConfig, OmegaConf


class KeyRecorder:
    """Records the keys of `root` read while `recording(name)` is active, per name."""

    def __init__(self, root: DictConfig):
        self.root, self.reads, self.current, self._busy = root, {}, [], False

    def _record(self, container, key) -> None:
        if not self.current or self._busy or container._get_root() is not self.root:
            return
        self._busy = True  # _get_full_key reads nodes itself
        try:
            full = container._get_full_key(key) if isinstance(container, DictConfig) else container._get_full_key(None)
        finally:
            self._busy = False
        self.reads.setdefault(self.current[-1], set()).add(full)

    @contextmanager
    def recording(self, name: str):
        """Record the reads made inside the block as `name`'s (OmegaConf patched meanwhile)."""
        originals = {cls: cls._get_node for cls in (DictConfig, ListConfig)}
        to_container = OmegaConf.to_container
        recorder = self

        def whole_config_copy(cfg, *args, **kwargs):  # the logged config, not a read of its values
            if cfg is not recorder.root:
                return to_container(cfg, *args, **kwargs)
            recorder._busy = True
            try:
                return to_container(cfg, *args, **kwargs)
            finally:
                recorder._busy = False

        def patch(cls):
            original = originals[cls]

            def _get_node(self, key, *args, **kwargs):
                node = original(self, key, *args, **kwargs)
                if node is not None and not isinstance(node, (DictConfig, ListConfig)):
                    recorder._record(self, key)
                return node

            return _get_node

        self.current.append(name)
        for cls in originals:
            cls._get_node = patch(cls)
        OmegaConf.to_container = staticmethod(whole_config_copy)
        try:
            yield self
        finally:
            for cls, original in originals.items():
                cls._get_node = original
            OmegaConf.to_container = staticmethod(to_container)
            self.current.pop()


def undeclared(reads: Iterable[str], covered: set[str], is_covered: Callable[[str, Iterable[str]], bool]) -> list[str]:
    """The read keys that no covered key covers, sorted."""
    return sorted(k for k in set(reads) if not is_covered(k, covered))
