"""PPO (policy + critic under one optimizer) for 3 iterations from the same tiny models and
prompts, under the plain CPU trainer, DeepSpeed ZeRO-2 and ZeRO-3 (DeepSpeed's CPU
accelerator, gloo); saves each run's final policy and critic weights. Run by test_deepspeed.

    python tests/helpers/ppo_deepspeed.py <out_dir> <max_grad_norm>
"""
import copy
import os
import sys
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import lightning as L  # noqa: E402
import torch  # noqa: E402

from benchmarks.ppo_step import setup  # noqa: E402
from inform.data import synthetic  # noqa: E402
from inform.data.collate import PromptBatches, encode_prompts  # noqa: E402
from inform.models.scorer import RewardScorer  # noqa: E402
from inform.models.value_model import ValueModel  # noqa: E402
from inform.modules.ppo import PPOModule  # noqa: E402
from inform.runtime.trainer import FullWeights  # noqa: E402
from inform.rl.ppo_config import PPOConfig  # noqa: E402
from tests.helpers.cpu_deepspeed import CPUDeepSpeedStrategy  # noqa: E402


def train(strategy, cfg: PPOConfig, policy, rm, tok, batches) -> dict[str, dict]:
    L.seed_everything(0, verbose=False)  # the critic's head init
    module = PPOModule(copy.deepcopy(policy), copy.deepcopy(policy), ValueModel.from_causal_lm(copy.deepcopy(policy)),
                       RewardScorer(copy.deepcopy(rm), tok, tok), tok, cfg, seed=0)
    critic_init = {n: t.detach().float().clone() for n, t in module.critic.state_dict().items()}
    full = {"policy": FullWeights("policy"), "critic": FullWeights("critic")}
    trainer = L.Trainer(accelerator="cpu", devices=1, strategy=strategy, precision="32-true", max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=list(full.values()), use_distributed_sampler=False)
    L.seed_everything(0, verbose=False)  # DeepSpeed's set-up re-seeds from the same seed
    trainer.fit(module, torch.utils.data.DataLoader(batches, batch_size=None))
    groups = [(g["name"], g["lr"]) for g in module.optimizers().optimizer.param_groups]
    weights = {name: cb.state or getattr(module, name).state_dict() for name, cb in full.items()}
    return {"groups": groups, "critic_init": critic_init, **{k: {n: t.detach().float().clone() for n, t in v.items()} for k, v in weights.items()}}


def main(out: Path, max_grad_norm: float):
    base, tok, policy, rm, _ = setup(batch=8)
    prompts = encode_prompts(tok, [r["prompt"] for r in synthetic.prompts(64, seed=9)], 16)
    batches = PromptBatches(prompts, 8, 3, 0, tok.pad_token_id)
    cfg = PPOConfig.from_section(base.ppo, max_new_tokens=6, minibatches=2, epochs=2, policy_lr=1e-3, critic_lr=3e-3,
                                 max_grad_norm=max_grad_norm)
    results = {"plain": train("auto", cfg, policy, rm, tok, batches)}
    for stage in (2, 3):
        strategy = CPUDeepSpeedStrategy(stage=stage, logging_batch_size_per_gpu=1)
        strategy.config["gradient_clipping"] = max_grad_norm  # as the RL stages set it
        results[f"zero{stage}"] = train(strategy, cfg, policy, rm, tok, batches)
    results["sft_policy"] = {n: t.detach().float().clone() for n, t in policy.state_dict().items()}
    torch.save(results, out / "ppo_deepspeed.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]))
