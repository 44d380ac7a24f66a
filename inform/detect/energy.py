"""The energy loss of the policy's last MLP (the InfoRM authors' EPPO work, arXiv 2501.19358).

For each response token t, with in_t (H_in,) the input and out_t (H_out,) the output of the
last decoder layer's MLP:

    e_t = mean_j |in_t,j| - mean_j |out_t,j|        (L1 norms divided by width)

A sequence's energy E is the mean of e_t over its response tokens, EOS and padding excluded.
It is read by a forward hook during a forward pass the caller makes anyway (PPO's log-prob
pass, the eval's), so it costs no extra pass. EPPO penalizes the policy's drift from the SFT
model's energy on the same prompt: r' = r - energy_coef * |E_policy(x, y) - E_sft(x, y_sft)|.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


def token_energy(mlp_in: torch.Tensor, mlp_out: torch.Tensor) -> torch.Tensor:
    """(b, T) e_t = mean_j |in_j| - mean_j |out_j| of (b, T, H_in) and (b, T, H_out)."""
    return mlp_in.abs().float().mean(-1) - mlp_out.abs().float().mean(-1)


def sequence_energy(e: torch.Tensor, response_mask: torch.Tensor, responses: torch.Tensor, eos_id: int, prompt_len: int) -> torch.Tensor:
    """(b,) mean of e_t over each response's tokens, EOS and padding excluded.

    e: (b, P + R) per position of the whole sequence; response_mask, responses: (b, R).
    """
    keep = (response_mask.bool() & (responses != eos_id)).float()  # (b, R)
    e_resp = e[:, prompt_len : prompt_len + responses.shape[1]]  # (b, R)
    return (e_resp * keep).sum(-1) / keep.sum(-1).clamp(min=1.0)


def last_mlp(model: nn.Module) -> nn.Module:
    """The MLP of the last decoder layer of a GPT-NeoX (Pythia) or Llama (Vicuna) model."""
    body = getattr(model, "base_model", model)
    layers = getattr(body, "layers", None)
    if layers is None or not hasattr(layers[-1], "mlp"):
        raise ValueError(f"energy: no decoder layers with an .mlp in {type(model).__name__} (GPT-NeoX and Llama are supported)")
    return layers[-1].mlp


class EnergyRecorder:
    """Records the per-position energy (b, T) of every forward pass while active."""

    def __init__(self, model: nn.Module):
        self.mlp = last_mlp(model)
        self.energy: torch.Tensor | None = None
        self.calls = 0

    def _hook(self, module, inputs, output) -> None:
        self.energy = token_energy(inputs[0].detach(), output.detach())
        self.calls += 1

    @contextmanager
    def recording(self):
        handle = self.mlp.register_forward_hook(self._hook)
        self.energy = None
        try:
            yield self
        finally:
            handle.remove()
