"""Over-optimization detectors at every PPO eval step, as one Lightning callback.

Config: `detect` (which run), `detectors.*` (their parameters), `early_stop` (the rule), the
validated config's nodes as they are (the values are conf/config.yaml's; none are defaulted here).
At each eval the callback compares the policy's eval samples with the SFT references of the
`sft_stats` stage and returns its metrics, which the PPO module logs with the eval's other
metrics (same W&B record, same step as `reward/gold`):

- csi: `csi/value`, `csi/n_clusters`, `csi/noise_frac` (proxy latents vs the SFT samples')
- mahalanobis: `detect/mahalanobis_mean` (mean D(z) to the SFT latents' Gaussian), `detect/mop`
- energy: `detect/energy_gap` = mean over eval prompts of |E_policy(x, y) - E_sft(x, y_sft)|

Early stopping (InfoRM appendix G) watches one of these (`early_stop.watch`): its change
rate e_t is logged as `early_stop/change_rate`; where e_t first exceeds e_max it logs
`early_stop/stop_step` (and `csi/stop_step` when it watches CSI), saves `csi_stop.ckpt` and,
with `early_stop.enabled`, stops PPO there (the exported policy is that step's).
Every `detectors.csi.plot_every_n_evals` it saves a t-SNE of SFT vs RLHF latents with the
CSI outlier clusters marked (PNG + W&B image `csi/latents`), and at the end `latents.npz`.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig
from sklearn.neighbors import NearestNeighbors

from inform.detect.csi import auto_eps, cluster_separation_index
from inform.detect.early_stop import ChangeRateStop
from inform.detect.mahalanobis import GaussianStats, mahalanobis, mop
from inform.report.latents import plot_latents
from inform.rl.evaluate import EvalResult

log = logging.getLogger("inform")
STOP_CKPT = "csi_stop.ckpt"


class DetectorCallback(L.Callback):
    """`detectors`: the config's `detectors` node (`.csi`, `.mahalanobis`); `early_stop`: its
    `early_stop` node (`.enabled`, `.watch`, `.e_max`)."""

    def __init__(
        self, out_dir: str | Path, detect: list[str], sft_latents: np.ndarray, detectors: DictConfig, early_stop: DictConfig,
        sft_energy: np.ndarray | None = None, gaussian: GaussianStats | None = None,
    ):
        self.out_dir, self.detect = Path(out_dir), list(detect)
        self.sft = np.asarray(sft_latents, dtype=np.float64)
        self.sft_energy, self.gaussian = sft_energy, gaussian
        self.csi, self.alpha = detectors.csi, detectors.mahalanobis.alpha
        self.stop_enabled, self.watch = early_stop.enabled, early_stop.watch
        self.stopper = ChangeRateStop(early_stop.e_max)
        self.index = NearestNeighbors(n_neighbors=1).fit(self.sft)
        self.sft_radius = auto_eps(self.sft, self.csi.min_samples)  # plots: "far from all SFT samples"
        self.n_evals = self.n_csi = 0
        self.stop_step: int | None = None
        self.latents: dict[int, np.ndarray] = {}  # eval step -> the policy's eval latents

    def on_fit_start(self, trainer, pl_module):
        if self not in pl_module.eval_listeners:
            pl_module.eval_listeners.append(self)

    # ------------------------------------------------------------------ the detectors
    def on_eval(self, module, result: EvalResult) -> dict[str, float]:
        self.n_evals += 1
        rlhf = result.proxy_latents.double().numpy()
        self.latents[result.step] = rlhf.astype(np.float32)
        metrics: dict[str, float] = {}
        t0 = time.perf_counter()
        csi_result = None
        if "csi" in self.detect and (self.n_evals - 1) % self.csi.every_n_evals == 0:
            c = self.csi
            csi_result = cluster_separation_index(rlhf, self.sft, c.method, c.eps, c.eps_scale, c.min_samples,
                                                  c.min_cluster_size, self.index)
            metrics.update(csi_result.metrics())
        if "mahalanobis" in self.detect:
            d = mahalanobis(rlhf, self.gaussian)
            metrics.update({"detect/mahalanobis_mean": float(d.mean()), "detect/mop": mop(d, self.gaussian.dim, self.alpha)})
        if "energy" in self.detect:
            gap = np.abs(result.policy_energy.double().numpy() - self.sft_energy)  # (n_eval,), prompt by prompt
            metrics["detect/energy_gap"] = float(gap.mean())
        metrics["detect/seconds"] = time.perf_counter() - t0
        if self.watch in metrics:
            metrics.update(self._early_stop(module, metrics[self.watch], result.step))
        if csi_result is not None:
            self.n_csi += 1
            if (self.n_csi - 1) % self.csi.plot_every_n_evals == 0 or self.stop_step == result.step:
                self._plot(module, rlhf, csi_result, result.step)
        return metrics

    def _early_stop(self, module, value: float, step: int) -> dict[str, float]:
        fired_before = self.stopper.fired_at is not None
        fired = self.stopper.update(value)
        out = {}
        e = self.stopper.ratio()
        if e is not None:
            out["early_stop/change_rate"] = min(e, 1e6)
        if fired and not fired_before:
            self.stop_step = step
            out["early_stop/stop_step"] = float(step)
            if self.watch.startswith("csi/"):
                out["csi/stop_step"] = float(step)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            module.trainer.save_checkpoint(self.out_dir / STOP_CKPT, weights_only=False)
            log.info("early stop: %s change rate %.3g > e_max %g at step %d%s", self.watch, e, self.stopper.e_max, step,
                     ", stopping" if self.stop_enabled else " (early_stop.enabled is off: training goes on)")
            if self.stop_enabled:
                module.trainer.should_stop = True
        if self.watch.startswith("csi/") and "early_stop/change_rate" in out:
            out["csi/change_rate"] = out["early_stop/change_rate"]
        return out

    # ------------------------------------------------------------------ pictures and state
    def _plot(self, module, rlhf: np.ndarray, res, step: int) -> None:
        if not module.trainer.is_global_zero:  # several processes: rank 0 draws
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = plot_latents(self.sft, rlhf, res, self.out_dir / f"latents_step{step:05d}.png", threshold=self.sft_radius,
                            title=f"step {step}: CSI {res.value:.3g}, {res.n_clusters} clusters", method=self.csi.plot_method)
        for lg in module.loggers:
            if isinstance(lg, WandbLogger):
                lg.log_image(key="csi/latents", images=[str(path)], step=step)

    def on_train_end(self, trainer, pl_module):
        """`latents.npz`: the SFT reference and every eval step's latents, for offline analysis."""
        if not trainer.is_global_zero:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        arrays = {"sft": self.sft.astype(np.float32), **{f"step_{k:05d}": v for k, v in self.latents.items()}}
        tmp = self.out_dir / "latents.tmp.npz"
        np.savez_compressed(tmp, **arrays)
        tmp.replace(self.out_dir / "latents.npz")

    def state_dict(self) -> dict:
        """What a resumed run needs (tensors, for weights_only loading)."""
        return {"stopper": self.stopper.state_dict(), "n_evals": self.n_evals, "n_csi": self.n_csi, "stop_step": self.stop_step,
                "latents": {int(k): torch.from_numpy(v) for k, v in self.latents.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.stopper.load_state_dict(state["stopper"])
        self.n_evals, self.n_csi, self.stop_step = state["n_evals"], state["n_csi"], state["stop_step"]
        self.latents = {int(k): v.numpy() for k, v in state["latents"].items()}
