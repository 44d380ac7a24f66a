"""PPO (policy + critic, one optimizer) under Lightning DDP on 2 CPU processes started by
torchrun: each rank samples its own prompt batches, so only DDP's gradient averaging keeps
the two policies equal. Saves each rank's final policy. Run by test_ranks.

    python -m torch.distributed.run --nproc_per_node=2 tests/helpers/ppo_ddp.py <out_dir>
"""
import copy
import os
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.environments import TorchElasticEnvironment

from benchmarks.ppo_step import setup
from inform.data import synthetic
from inform.data.collate import PromptBatches, ResumableSampler, encode_prompts
from inform.models.scorer import RewardScorer
from inform.models.value_model import ValueModel
from inform.modules.ppo import PPOModule
from inform.runtime import ranks
from inform.rl.ppo_config import PPOConfig


def main(out: Path):
    ranks.start()
    world = os.environ.pop("WORLD_SIZE")  # the tiny config below is a one-process config
    base, tok, policy, rm, _ = setup(batch=8)
    os.environ["WORLD_SIZE"] = world
    prompts = encode_prompts(tok, [r["prompt"] for r in synthetic.prompts(64, seed=9)], 16)
    batches = PromptBatches(prompts, 8, 4, 0, tok.pad_token_id)  # 4 batches: 2 iterations on each rank
    sampler = ResumableSampler(len(batches), shuffle=False)
    sampler.set_replicas(2, ranks.rank())
    cfg = PPOConfig.from_section(base.ppo, max_new_tokens=6, minibatches=2, epochs=2, policy_lr=1e-3, critic_lr=3e-3)
    L.seed_everything(0, verbose=False)
    module = PPOModule(copy.deepcopy(policy), copy.deepcopy(policy), ValueModel.from_causal_lm(copy.deepcopy(policy)),
                       RewardScorer(copy.deepcopy(rm), tok, tok), tok, cfg, seed=0)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", plugins=[TorchElasticEnvironment()], max_epochs=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False)
    trainer.fit(module, torch.utils.data.DataLoader(batches, batch_size=None, sampler=sampler))
    weights = {k: v.detach().clone() for k, v in module.policy.state_dict().items()}
    sft = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    torch.save({"policy": weights, "sft": sft, "iterations": module.iteration}, out / f"rank{ranks.rank()}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
