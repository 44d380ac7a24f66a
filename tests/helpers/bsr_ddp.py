"""BSR on 2 CPU processes (DDP, gloo) vs. 1 process on the whole batch; run by test_objectives.

Rank k holds pairs [2k, 2k+1] of a 4-pair batch. The model is r = x . w; DDP averages the
gradient of each rank's loss. The result must equal the 1-process gradient of the same loss.
"""
import sys
from pathlib import Path

import torch
from lightning.fabric import Fabric

from inform.models.reward_model import RewardOutput
from inform.objectives import bsr_loss

LAM = 0.5
torch.manual_seed(0)
X_W, X_L = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64) + 1.0
W0 = torch.randn(3, dtype=torch.float64)


def loss_on(rows, gather=None):
    w = W0.clone().requires_grad_(True)
    out = lambda x: RewardOutput(reward=x[rows] @ w, hidden=x[rows])  # noqa: E731
    loss, m = bsr_loss(out(X_W), out(X_L), bsr_lambda=LAM, all_gather=gather)
    return w, loss, m


def main(out_dir: Path):
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp", num_nodes=1)
    fabric.launch()
    rank = fabric.global_rank
    rows = slice(2 * rank, 2 * rank + 2)
    w, loss, m = loss_on(rows, gather=lambda t: fabric.all_gather(t, sync_grads=True).reshape(-1))
    loss.backward()
    grad = fabric.all_reduce(w.grad, reduce_op="mean")  # what DDP does to parameter gradients
    mean_loss = fabric.all_reduce(loss.detach(), reduce_op="mean")
    _, _, local = loss_on(rows)  # penalty from this device's batch only
    if rank == 0:
        w1, loss1, m1 = loss_on(slice(0, 4))
        loss1.backward()
        torch.save({"loss": loss1.detach(), "penalty": m1["rm/bsr_penalty"], "grad": w1.grad}, out_dir / "single.pt")
        torch.save({"loss": mean_loss, "penalty": m["rm/bsr_penalty"], "grad": grad, "local_penalty": local["rm/bsr_penalty"]}, out_dir / "ddp.pt")
    fabric.barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
