"""Lightning's DeepSpeedStrategy on the CPU, for the tests: DeepSpeed's own CPU accelerator
(gloo) runs the real ZeRO-2/3 engine and optimizer; only Lightning's CUDA checks are lifted
(the CUDA-only check, and the device-index check, which a CPU device has no index for)."""
from __future__ import annotations

import os

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy


class CPUDeepSpeedStrategy(DeepSpeedStrategy):
    def setup_environment(self) -> None:
        self.parallel_devices = [torch.device("cpu", i) for i in range(len(self.parallel_devices))]  # DeepSpeed wants an index
        DDPStrategy.setup_environment(self)

    def setup_distributed(self) -> None:
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()
