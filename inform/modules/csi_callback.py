"""CSI at every eval step of PPO, as a Lightning callback (config section `csi`).

At the first eval (step 0) it samples the SFT policy once more on the eval prompts (another
seed) and keeps those latents as the SFT reference; then at every `every_n_evals`-th eval
it computes CSI of the policy's eval samples against them and returns `csi/value`,
`csi/n_clusters`, `csi/noise_frac`, `csi/change_rate` (e_t of appendix G) and `csi/seconds`,
which the PPO module logs with the eval's other metrics (same W&B record and step).
When e_t first exceeds e_max it logs `csi/stop_step`, saves `csi_stop.ckpt` and, with
`early_stop: true`, stops training there (the exported policy is that step's).
Every `plot_every_n_evals` CSI computations it saves a t-SNE of SFT vs RLHF latents with
the outlier clusters marked, as a PNG and a W&B image (`csi/latents`).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from sklearn.neighbors import NearestNeighbors

from inform.detect.csi import auto_eps, cluster_separation_index
from inform.detect.early_stop import ChangeRateStop
from inform.report.latents import plot_latents
from inform.rl.evaluate import EvalResult

log = logging.getLogger("inform")


class CSICallback(L.Callback):
    def __init__(
        self, out_dir: str | Path, every_n_evals: int = 1, method: str = "dbscan", eps: float | None = None,
        eps_scale: float = 1.0, min_samples: int = 5, min_cluster_size: int = 5, early_stop: bool = False,
        e_max: float = 10.0, plot_every_n_evals: int = 5, plot_method: str = "tsne", reference_seed_offset: int = 1,
    ):
        self.out_dir = Path(out_dir)
        self.every_n_evals, self.method, self.eps, self.eps_scale = every_n_evals, method, eps, eps_scale
        self.min_samples, self.min_cluster_size = min_samples, min_cluster_size
        self.early_stop, self.plot_every_n_evals, self.plot_method = early_stop, plot_every_n_evals, plot_method
        self.reference_seed_offset = reference_seed_offset
        self.stopper = ChangeRateStop(e_max)
        self.sft: np.ndarray | None = None
        self.index: NearestNeighbors | None = None
        self.n_evals = 0
        self.n_computed = 0
        self.stop_step: int | None = None
        self.sft_radius: float | None = None  # median min_samples-NN distance among SFT latents
        self.latents: dict[int, np.ndarray] = {}  # eval step -> the policy's eval latents (saved at the end)

    def on_fit_start(self, trainer, pl_module):
        if self not in pl_module.eval_listeners:
            pl_module.eval_listeners.append(self)

    def _reference(self, module) -> None:
        """SFT latents on the eval prompts, sampled with another seed than the eval's."""
        ref = module.evaluator.run(0, module.policy, module.ref, module.proxy, module.device, module.seed + self.reference_seed_offset)
        self.sft = ref.proxy_latents.double().numpy()
        self.index = NearestNeighbors(n_neighbors=1).fit(self.sft)
        self.sft_radius = auto_eps(self.sft, self.min_samples)

    def on_eval(self, module, result: EvalResult) -> dict[str, float]:
        if self.sft is None:
            self._reference(module)
        self.n_evals += 1
        if (self.n_evals - 1) % self.every_n_evals:
            return {}
        t0 = time.perf_counter()
        rlhf = result.proxy_latents.double().numpy()
        self.latents[result.step] = rlhf.astype(np.float32)
        res = cluster_separation_index(rlhf, self.sft, self.method, self.eps, self.eps_scale, self.min_samples, self.min_cluster_size, self.index)
        metrics = {**res.metrics(), "csi/seconds": time.perf_counter() - t0}
        fired_before = self.stopper.fired_at is not None
        fired = self.stopper.update(res.value)
        e = self.stopper.ratio()
        if e is not None:
            metrics["csi/change_rate"] = min(e, 1e6)
        if fired and not fired_before:
            self.stop_step = result.step
            metrics["csi/stop_step"] = float(result.step)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            module.trainer.save_checkpoint(self.out_dir / "csi_stop.ckpt")
            log.info("csi: change rate %.3g > e_max %g at step %d%s", e, self.stopper.e_max, result.step,
                     ", stopping" if self.early_stop else " (csi.early_stop is off: training goes on)")
            if self.early_stop:
                module.trainer.should_stop = True
        self.n_computed += 1
        if (self.n_computed - 1) % self.plot_every_n_evals == 0 or (fired and not fired_before):
            self._plot(module, rlhf, res, result.step)
        return metrics

    def on_train_end(self, trainer, pl_module):
        """`latents.npz`: the SFT reference and every eval step's latents, for offline analysis."""
        if self.sft is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        arrays = {"sft": self.sft.astype(np.float32), **{f"step_{k:05d}": v for k, v in self.latents.items()}}
        tmp = self.out_dir / "latents.tmp.npz"
        np.savez_compressed(tmp, **arrays)
        tmp.replace(self.out_dir / "latents.npz")

    def _plot(self, module, rlhf: np.ndarray, res, step: int) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = plot_latents(self.sft, rlhf, res, self.out_dir / f"latents_step{step:05d}.png", threshold=self.sft_radius,
                            title=f"step {step}: CSI {res.value:.3g}, {res.n_clusters} clusters", method=self.plot_method)
        for lg in module.loggers:
            if isinstance(lg, WandbLogger):
                lg.log_image(key="csi/latents", images=[str(path)], step=step)

    def state_dict(self) -> dict:
        """Everything a resumed run needs (tensors, for weights_only loading)."""
        return {
            "stopper": self.stopper.state_dict(), "n_evals": self.n_evals, "n_computed": self.n_computed,
            "stop_step": self.stop_step, "sft_radius": self.sft_radius,
            "sft": None if self.sft is None else torch.from_numpy(self.sft),
            "latents": {int(k): torch.from_numpy(v) for k, v in self.latents.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.stopper.load_state_dict(state["stopper"])
        self.n_evals, self.n_computed, self.stop_step = state["n_evals"], state["n_computed"], state["stop_step"]
        self.sft_radius = state["sft_radius"]
        self.sft = None if state["sft"] is None else state["sft"].numpy()
        self.latents = {int(k): v.numpy() for k, v in state["latents"].items()}
        self.index = NearestNeighbors(n_neighbors=1).fit(self.sft) if self.sft is not None else None
