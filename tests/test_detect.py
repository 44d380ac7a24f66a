"""The detectors beyond CSI on inputs with a known answer: Mahalanobis/MOP, the energy hook."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from inform.detect.energy import EnergyRecorder, last_mlp, sequence_energy, token_energy
from inform.detect.mahalanobis import fit_gaussian, mahalanobis, mop, outlier_pvalues


@pytest.fixture(scope="module")
def sft():
    rng = np.random.default_rng(0)
    return rng.standard_normal((20000, 3)) * np.array([1.0, 2.0, 3.0]) + np.array([5.0, 0.0, -1.0])


def test_in_distribution_samples_give_mop_close_to_alpha(sft):
    stats = fit_gaussian(sft)
    fresh = np.random.default_rng(1).standard_normal((8000, 3)) * np.array([1.0, 2.0, 3.0]) + np.array([5.0, 0.0, -1.0])
    d = mahalanobis(fresh, stats)
    assert mop(d, stats.dim, alpha=0.01) == pytest.approx(0.01, abs=0.004)   # sd of the share: 0.0011
    assert mop(d, stats.dim, alpha=0.05) == pytest.approx(0.05, abs=0.01)
    assert np.mean(d**2) == pytest.approx(3.0, abs=0.1)  # E[D^2] = dim under the SFT Gaussian


def test_a_known_shift_gives_the_known_distance_and_mop_near_one(sft):
    stats = fit_gaussian(sft)
    v = np.array([4.0, -6.0, 9.0])  # 4, 3 and 3 standard deviations
    d = mahalanobis(stats.mean[None, :] + v, stats)
    assert d[0] == pytest.approx(math.sqrt(v @ stats.precision @ v), rel=1e-12)  # by hand, fitted S
    assert d[0] == pytest.approx(math.sqrt(16 + 9 + 9), rel=0.02)  # and ~ the true S
    shifted = sft[:4000] + v
    assert mop(mahalanobis(shifted, stats), stats.dim) > 0.97
    assert outlier_pvalues(np.array([0.0]), 3)[0] == pytest.approx(1.0)


def test_shrinkage_pca_and_a_singular_covariance(sft):
    lw = fit_gaussian(sft, shrinkage="ledoit_wolf")
    assert mahalanobis(lw.mean[None], lw)[0] == pytest.approx(0.0, abs=1e-9)
    reduced = fit_gaussian(sft, pca_dim=2)
    assert reduced.dim == 2 and mahalanobis(sft[:10], reduced).shape == (10,)
    collapsed = np.concatenate([sft[:500, :2], np.zeros((500, 1))], axis=1)  # one dimension never moves
    with pytest.raises(ValueError, match=r"detectors\.mahalanobis: the SFT latent covariance \(3 dims, 500 samples\) is singular"):
        fit_gaussian(collapsed, eps=0.0)
    stats = fit_gaussian(collapsed, eps=1e-6)  # the documented fallback: eps * I
    assert np.isfinite(mahalanobis(collapsed[:5], stats)).all()


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.mlp.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 3.0]]))

    def forward(self, x):
        return x + self.mlp(x)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Block(), Block()])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_energy_hook_gives_the_hand_computed_value_without_an_extra_forward():
    model = Tiny()
    rec = EnergyRecorder(model)
    assert rec.mlp is model.layers[-1].mlp
    x = torch.tensor([[[1.0, -2.0]]])  # (b=1, T=1, H=2)
    with rec.recording():
        model(x)
    # the last MLP sees h = x + W x = [2, -8]; out = W h = [2, -24]
    # e = mean(|2|, |-8|) - mean(|2|, |-24|) = 5 - 13 = -8
    assert rec.energy.tolist() == [[-8.0]]
    assert rec.calls == 1  # one forward pass, one reading: the hook adds no pass
    model(x)
    assert rec.calls == 1  # outside `recording` the hook is gone
    assert token_energy(torch.tensor([[[1.0, -2.0]]]), torch.tensor([[[1.0, -6.0]]])).item() == pytest.approx(1.5 - 3.5)


def test_sequence_energy_averages_response_tokens_without_eos_and_pad():
    e = torch.tensor([[9.0, 9.0, 1.0, 2.0, 3.0, 7.0], [9.0, 9.0, 4.0, 0.0, 0.0, 0.0]])  # (b, P + R), P = 2
    responses = torch.tensor([[5, 6, 7, 0], [8, 0, 1, 1]])  # EOS = 0, pad = 1
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    got = sequence_energy(e, mask, responses, eos_id=0, prompt_len=2)
    assert got.tolist() == pytest.approx([(1 + 2 + 3) / 3, 4.0])


def test_last_mlp_of_real_gpt_neox_and_llama_models():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

    neox = GPTNeoXForCausalLM(GPTNeoXConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, vocab_size=50))
    llama = LlamaForCausalLM(LlamaConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, vocab_size=50))
    for model in (neox, llama):
        rec = EnergyRecorder(model)
        assert rec.mlp is model.base_model.layers[-1].mlp
        with rec.recording():
            model(torch.tensor([[1, 2, 3]]))
        assert rec.energy.shape == (1, 3) and rec.calls == 1
    with pytest.raises(ValueError, match="no decoder layers"):
        last_mlp(nn.Linear(2, 2))


# --------------------------------------------------------------------------- mitigations
def test_ibl_and_eppo_rewards_by_hand():
    from inform.rl.mitigations import mitigated_scores

    scores = torch.tensor([1.0, -0.5, 2.0])
    d = torch.tensor([10.0, 2.0, 0.0])
    e_pol, e_sft = torch.tensor([0.3, 0.1, -0.2]), torch.tensor([0.1, 0.4, -0.2])
    got = mitigated_scores(scores, ibl_coef=0.05, distances=d, energy_coef=2.0, energy_policy=e_pol, energy_sft=e_sft)
    # r - 0.05 D - 2 |E_pol - E_sft|: [1 - 0.5 - 0.4, -0.5 - 0.1 - 0.6, 2 - 0 - 0]
    assert got.tolist() == pytest.approx([0.1, -1.2, 2.0])
    assert mitigated_scores(scores, ibl_coef=0.05, distances=d).tolist() == pytest.approx([0.5, -0.6, 2.0])
    same = mitigated_scores(scores, 0.0, d, 0.0, e_pol, e_sft)
    assert same is scores  # a zero coefficient does not touch the rewards at all


# --------------------------------------------------------------------------- early stop on any detector
def test_early_stop_fires_from_the_chosen_detector_on_a_planted_series(tmp_path, compose):
    from types import SimpleNamespace

    from inform.config import validate
    from inform.detect.mahalanobis import fit_gaussian
    from inform.modules.detector_callback import DetectorCallback
    from inform.rl.evaluate import EvalResult

    rng = np.random.default_rng(0)
    sft = rng.standard_normal((2000, 3))
    saved = []
    trainer = SimpleNamespace(should_stop=False, is_global_zero=True, save_checkpoint=lambda p, **kw: saved.append(Path(p)))
    module = SimpleNamespace(trainer=trainer, loggers=[])
    cfg = validate(compose("detect=[csi,mahalanobis]", "detectors.csi.plot_every_n_evals=1000", "early_stop.enabled=true",
                           "early_stop.watch=detect/mahalanobis_mean", "early_stop.e_max=10.0"))
    cb = DetectorCallback(tmp_path, list(cfg.detect), sft[:300], cfg.detectors, cfg.early_stop, gaussian=fit_gaussian(sft))
    # the policy's latents: like SFT for three evals (small wiggles), then planted 8 SD away
    shifts = [0.0, 0.05, 0.0, 0.08, 8.0]
    fired = []
    for i, shift in enumerate(shifts):
        lat = torch.from_numpy(rng.standard_normal((200, 3)) + shift)
        metrics = cb.on_eval(module, EvalResult(4 * i, {}, lat))
        fired.append("early_stop/stop_step" in metrics)
        assert "csi/value" in metrics and "detect/mop" in metrics
    assert fired == [False, False, False, False, True]
    assert cb.stop_step == 16 and trainer.should_stop and saved == [tmp_path / "csi_stop.ckpt"]


def test_ppo_reads_the_energy_without_an_extra_policy_forward():
    """make_experience with the energy hook on makes exactly as many policy passes as without."""
    import copy

    from benchmarks.ppo_step import setup
    from inform.models.scorer import RewardScorer
    from inform.models.value_model import ValueModel
    from inform.modules.ppo import PPOModule
    from inform.rl.ppo_config import PPOConfig

    cfg, tok, policy, rm, batch = setup(batch=8)
    counts = {}
    for record in (False, True):
        pol = copy.deepcopy(policy)
        calls = []
        pol.register_forward_hook(lambda *a: calls.append(1))
        module = PPOModule(pol, copy.deepcopy(policy), ValueModel.from_causal_lm(copy.deepcopy(policy)), RewardScorer(rm, tok, tok),
                           tok, PPOConfig.from_section(cfg.ppo, max_new_tokens=6), record_energy=record)
        torch.manual_seed(0)
        module.make_experience(batch["input_ids"], batch["attention_mask"], batch["index"])
        counts[record] = len(calls)
        if record:
            assert module.energy.calls == 1 and module.energy.energy.shape[0] == 8
    assert counts[True] == counts[False]
