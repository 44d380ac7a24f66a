"""The baselines against over-optimization: ensemble RMs (mean, min, UWO), WARM, RLOO.

Hand-computed values for the math; the real entry point on the smoke upstream for the stages."""
import json
from pathlib import Path

import pytest
import torch

from inform.models.ensemble import EnsembleScorer, aggregate, average_weights
from inform.models.reward_model import RewardModel
from inform.models.scorer import RewardScorer
from inform.rl.rloo import rloo_advantages
from inform.tracking.csv_metrics import read_csv_metrics, series
from tests.conftest import copy_upstream, run_inform


# ---------------------------------------------------------------------- the math, by hand
def test_aggregations_by_hand():
    scores = torch.tensor([[1.0, -2.0], [3.0, 0.0], [2.0, 2.0]])  # k = 3 members, b = 2 responses
    assert aggregate(scores, "mean").tolist() == pytest.approx([2.0, 0.0])
    assert aggregate(scores, "min").tolist() == [1.0, -2.0]
    # population variances: (1 + 1 + 0) / 3 = 2/3 and (4 + 0 + 4) / 3 = 8/3
    assert aggregate(scores, "uwo", uwo_lambda=0.1).tolist() == pytest.approx([2.0 - 0.1 * 2 / 3, 0.0 - 0.1 * 8 / 3])
    assert aggregate(scores, "uwo", uwo_lambda=0.0).tolist() == pytest.approx([2.0, 0.0])
    with pytest.raises(ValueError, match="ensemble.combine: 'median'"):
        aggregate(scores, "median")


def test_rloo_baseline_and_advantage_by_hand():
    rewards = torch.tensor([1.0, 2.0, 6.0, -1.0, 0.0, 1.0])  # 2 prompts, k = 3 samples each
    baselines, adv = rloo_advantages(rewards, 3)
    # prompt 0: b = (2+6)/2, (1+6)/2, (1+2)/2 = 4, 3.5, 1.5;  prompt 1: (0+1)/2, (-1+1)/2, (-1+0)/2
    assert baselines.tolist() == pytest.approx([4.0, 3.5, 1.5, 0.5, 0.0, -0.5])
    assert adv.tolist() == pytest.approx([-3.0, -1.5, 4.5, -1.5, 0.0, 1.5])
    # A_i = k / (k - 1) * (R_i - mean of the group)
    assert adv[:3].tolist() == pytest.approx([1.5 * (r - 3.0) for r in (1.0, 2.0, 6.0)])
    assert rloo_advantages(torch.tensor([5.0, 5.0]), 2)[1].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="k >= 2"):
        rloo_advantages(rewards, 1)


def tiny_rms(n: int, head: dict) -> list[RewardModel]:
    """n real (GPT-NeoX) reward models of one architecture, each from its own seed."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                           max_position_embeddings=64, rotary_pct=0.25)
    models = []
    for seed in range(n):
        torch.manual_seed(seed)
        models.append(RewardModel.from_causal_lm(GPTNeoXForCausalLM(config), head))
    return models


def test_warm_weights_are_the_members_mean():
    members = tiny_rms(3, {"kind": "ib", "latent_dim": 4, "decoder": "linear"})
    merged = average_weights(members)
    states = [m.state_dict() for m in members]
    for key, value in merged.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, (states[0][key] + states[1][key] + states[2][key]) / 3, atol=1e-7), key
    assert not torch.equal(states[0]["head.encoder.weight"], states[1]["head.encoder.weight"])  # members differ
    with pytest.raises(ValueError, match="another architecture"):
        average_weights([members[0], tiny_rms(1, {"kind": "scalar"})[0]])


def test_ensemble_scorer_combines_standardized_member_scores():
    members = tiny_rms(2, {"kind": "scalar"})
    ids = torch.randint(0, 50, (5, 7))
    mask = torch.ones_like(ids)
    raw = [m.eval()(ids, mask).reward for m in members]
    stats = [(0.5, 2.0), (-1.0, 0.25)]
    scorers = []
    for m, (mean, std) in zip(members, stats):
        s = RewardScorer.__new__(RewardScorer)  # no tokenizer check: the ids are shared
        s.model, s.mean, s.std, s.same_vocab, s.missing_eos_penalty = m, mean, std, True, 0.0
        scorers.append(s)
    z = torch.stack([(r - mean) / std for r, (mean, std) in zip(raw, stats)])
    for combine in ("mean", "min", "uwo"):
        ens = EnsembleScorer(scorers, combine, uwo_lambda=0.1, missing_eos_penalty=0.5)
        out = ens.raw(ids, mask, prompt_len=3)
        assert torch.allclose(out.reward, aggregate(z, combine, 0.1), atol=1e-6), combine
        assert torch.equal(out.latent, members[0](ids, mask).hidden)  # CSI reads member 0
        has_eos = torch.tensor([True, False, True, True, False])
        assert torch.allclose(ens.normalize(out.reward, has_eos), out.reward - 0.5 * (~has_eos).float())


# ---------------------------------------------------------------------- the stages, end to end
def artifact(root: Path, stage: str) -> list[Path]:
    return sorted(p for p in (root / "artifacts").glob(f"{stage}-*") if p.is_dir())


@pytest.mark.slow
def test_rloo_raises_the_proxy_reward_with_ppos_eval_and_detectors(sweep, tmp_path):
    """Also the static KV cache's path end to end (rollouts and eval sampling; the GPU
    benchmark's tiny run covers PPO's)."""
    root = tmp_path
    copy_upstream(sweep[0], root)
    proc = run_inform("experiment=smoke", "beta=0.01", "stage=rloo", "rloo.k=4", "ppo.kv_cache=static", "logger=csv",
                      f"hydra.run.dir={root}/rloo", cwd=root)
    assert "rloo: built" in proc.stdout and "sft: built" not in proc.stdout and " - rm: built" not in proc.stdout
    (out,) = artifact(root, "rloo")
    history = json.loads((out / "eval_history.json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 4, 8, 12, 16]
    assert history[-1]["reward/proxy_eval"] > history[0]["reward/proxy_eval"] + 0.5, history
    assert all("csi/value" in h and "reward/gold" in h for h in history)
    rows = read_csv_metrics(root / "rloo" / "rloo" / "csv")
    for key in ("objective/kl", "objective/entropy", "policy/clipfrac", "policy/approxkl", "reward/proxy", "rloo/advantage_std"):
        assert [s for s, _ in series(rows, key)] == list(range(1, 17)), key
    assert (out / "overoptimization.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_ensemble_and_warm_proxies_train_members_once_and_run_ppo(sweep, tmp_path):
    root = tmp_path
    copy_upstream(sweep[0], root)
    base = ["experiment=smoke", "beta=0.01", "ensemble.members=2", "ppo.steps=4", "logger=csv", "detect=[csi]"]
    uwo = run_inform(*base, "ensemble.combine=uwo", "stage=ppo", f"hydra.run.dir={root}/uwo", cwd=root)
    # member 0 is the sweep's beta=0.01 proxy (reused); member 1 is trained with seed + 1000
    assert " - rm: built" not in uwo.stdout and uwo.stdout.count(" - rm_member1: built") == 1 and "ppo: built" in uwo.stdout
    warm = run_inform(*base, "ensemble.combine=warm", "stage=ppo", f"hydra.run.dir={root}/warm", cwd=root)
    assert "warm: 2 members averaged" in warm.stdout and "ppo: built" in warm.stdout
    # WARM's members share the head init, so a second member is trained for it
    assert " - rm: built" not in warm.stdout and warm.stdout.count(" - rm_member1: built") == 1
    (warm_dir,) = artifact(root, "warm")
    spec = json.loads((warm_dir / "spec.json").read_text())
    members = [root / "artifacts" / f"{name}-{h}" for name, h in spec["upstream"].items() if name.startswith("rm")]
    assert [m.name.split("-")[0] for m in members] == ["rm", "rm_member1"] and all(m.is_dir() for m in members)
    loaded = [RewardModel.from_pretrained(p) for p in members]
    merged = RewardModel.from_pretrained(warm_dir).state_dict()
    for key, value in merged.items():
        if value.is_floating_point():
            assert torch.allclose(value, (loaded[0].state_dict()[key] + loaded[1].state_dict()[key]) / 2, atol=1e-6), key
    metrics = json.loads((warm_dir / "metrics.json").read_text())
    assert 0.5 < metrics["val/acc"] <= 1.0 and len(metrics["warm/member_val_acc"]) == 2
    for run in ("uwo", "warm"):
        rows = read_csv_metrics(root / run / "ppo" / "csv")
        assert [s for s, _ in series(rows, "reward/gold")] == [0, 4] and len(series(rows, "csi/value")) == 2
