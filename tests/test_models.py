"""Model presets, the tiny offline model and tokenizer, and reward-model heads."""
import warnings

import pytest
import torch
from omegaconf import OmegaConf

from inform.config import validate
from inform.data import synthetic
from inform.data.collate import pad
from inform.models.causal_lm import build_causal_lm, count_parameters
from inform.models.reward_model import RewardModel
from inform.models.tokenizer import load_tokenizer, tokenizer_from, train_tiny_tokenizer

PUBLISHED = {  # parameter counts published with each model
    "pythia-70m": 70_426_624, "pythia-160m": 162_322_944, "pythia-410m": 405_334_016,
    "pythia-1.4b": 1_414_647_808, "pythia-2.8b": 2_775_208_960, "pythia-6.9b": 6_857_302_016,
    "vicuna-7b": 6_738_415_616,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_builds_the_published_parameter_count_on_meta(compose, name):
    cfg = validate(compose(f"model@policy={name}", f"model@reward={name}", f"model@gold_model={name}"))
    assert cfg.policy.params == PUBLISHED[name]
    assert count_parameters(cfg.policy) == PUBLISHED[name]


def test_tiny_tokenizer_is_local_deterministic_and_one_token_per_task_word():
    a, b = train_tiny_tokenizer(), train_tiny_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    assert 256 < len(a) <= 400
    for w in synthetic.WORDS + (synthetic.FILLER,):
        assert len(a.tokenize(" " + w)) == 1, w
    assert a.decode(a(" apple ! moon")["input_ids"]) == " apple ! moon"
    assert a.eos_token_id == 0 and a.pad_token_id == 1  # Pythia's ids


def test_tiny_model_is_deterministic_from_the_seed(compose):
    cfg = validate(compose())
    tok = load_tokenizer(cfg.policy)
    m1, m2, m3 = (build_causal_lm(cfg.policy, tok, seed=s) for s in (7, 7, 8))
    p1, p2, p3 = (torch.cat([p.flatten() for p in m.parameters()]) for m in (m1, m2, m3))
    assert torch.equal(p1, p2) and not torch.equal(p1, p3)
    assert m1.config.hidden_size == 64 and m1.config.num_hidden_layers == 2
    assert m1.config.vocab_size == len(tok)


def test_real_loading_path_from_a_local_folder(compose, tmp_path):
    """source = a local folder goes through AutoModelForCausalLM / AutoTokenizer, as a hub id would."""
    cfg = validate(compose())
    tok = load_tokenizer(cfg.policy)
    model = build_causal_lm(cfg.policy, tok, seed=0)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    local = OmegaConf.merge(cfg.policy, {"source": str(tmp_path / "m"), "init": "pretrained"})
    tok2 = load_tokenizer(local)
    loaded = build_causal_lm(local, tok2)
    assert tok2.get_vocab() == tok.get_vocab()
    for (n, p), (_, q) in zip(model.named_parameters(), loaded.named_parameters()):
        assert torch.equal(p, q), n


def _rm(compose, head):
    cfg = validate(compose())
    tok = load_tokenizer(cfg.policy)
    torch.manual_seed(0)
    return RewardModel.from_causal_lm(build_causal_lm(cfg.policy, tok, seed=0), head), tok


def test_reward_is_read_at_the_last_real_token_whatever_the_padding(compose):
    rm, tok = _rm(compose, {"kind": "scalar"})
    rm.eval()
    seqs = [tok("Copy: apple moon = apple moon")["input_ids"], tok("Copy: owl = owl ! !")["input_ids"]]
    with torch.no_grad():
        right = rm(*pad(seqs, tok.pad_token_id, "right")).reward
        left = rm(*pad(seqs, tok.pad_token_id, "left")).reward
        alone = torch.stack([rm(*pad([s], tok.pad_token_id)).reward[0] for s in seqs])
    assert torch.allclose(right, alone, atol=1e-5) and torch.allclose(left, alone, atol=1e-5)


def test_ib_head_samples_in_training_and_uses_mu_in_eval(compose):
    rm, tok = _rm(compose, {"kind": "ib", "latent_dim": 8})
    ids, mask = pad([tok("Copy: apple = apple")["input_ids"]] * 3, tok.pad_token_id)
    rm.train()
    r_train = rm(ids, mask).reward
    assert not torch.allclose(r_train[0], r_train[1])  # different eps per row
    rm.eval()
    out = rm(ids, mask)
    assert out.mu.shape == (3, 8) and out.latent is out.mu
    assert torch.allclose(out.reward, rm.head.decoder(out.mu).squeeze(-1))


@pytest.mark.parametrize("head", [{"kind": "scalar"}, {"kind": "ib", "latent_dim": 4, "decoder": "mlp"}])
def test_reward_model_export_loads_by_path(compose, tmp_path, head):
    rm, tok = _rm(compose, head)
    rm.eval()
    ids, mask = pad([tok("Copy: kite = kite")["input_ids"], tok("Copy: sun owl = owl")["input_ids"]], tok.pad_token_id)
    rm.save_pretrained(tmp_path / "rm", tok)
    again = RewardModel.from_pretrained(tmp_path / "rm").eval()
    with torch.no_grad():
        assert torch.allclose(rm(ids, mask).reward, again(ids, mask).reward, atol=1e-6)
    assert tokenizer_from(tmp_path / "rm").get_vocab() == tok.get_vocab()


def test_not_a_reward_model_export_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        RewardModel.from_pretrained(tmp_path)


def test_critic_from_a_scalar_rm_reproduces_its_reward_at_the_last_token(compose):
    from inform.models.value_model import ValueModel

    rm, tok = _rm(compose, {"kind": "scalar"})
    rm.eval()
    critic = ValueModel.from_reward_model(rm).eval()
    ids, mask = pad([tok("Copy: kite = kite")["input_ids"], tok("Copy: sun owl = owl ! !")["input_ids"]], tok.pad_token_id)
    with torch.no_grad():
        values = critic(ids, mask)  # (2, T)
        last = mask.sum(-1) - 1
        assert values.shape == ids.shape
        assert torch.allclose(values[torch.arange(2), last], rm(ids, mask).reward, atol=1e-5)


def test_scorer_retokenizes_for_a_reward_model_with_another_vocabulary(compose):
    """A gold RM with its own tokenizer (Vicuna scoring Pythia in the paper) scores the decoded text."""
    from inform.models.scorer import RewardScorer

    cfg = validate(compose())
    policy_tok = load_tokenizer(cfg.policy)
    other_tok = train_tiny_tokenizer(300)
    assert other_tok.get_vocab() != policy_tok.get_vocab()
    torch.manual_seed(0)
    small = OmegaConf.merge(cfg.policy, {"vocab_size": len(other_tok)})
    rm = RewardModel.from_causal_lm(build_causal_lm(small, other_tok, seed=0), {"kind": "scalar"}).eval()
    scorer = RewardScorer(rm, other_tok, policy_tok, mean=1.0, std=2.0, missing_eos_penalty=0.5, max_prompt_tokens=16, max_response_tokens=13)
    assert not scorer.same_vocab
    prompt, response = "Copy: apple moon =", " apple moon"
    p_ids = policy_tok(prompt)["input_ids"]
    r_ids = policy_tok(response, add_special_tokens=False)["input_ids"] + [policy_tok.eos_token_id]
    seqs, mask = pad([[policy_tok.pad_token_id] * 2 + p_ids + r_ids], policy_tok.pad_token_id)
    mask[0, :2] = 0  # left padding of the prompt
    got = scorer.raw(seqs, mask, prompt_len=2 + len(p_ids)).reward
    want_ids = other_tok(prompt)["input_ids"] + other_tok(response, add_special_tokens=False)["input_ids"] + [other_tok.eos_token_id]
    with torch.no_grad():
        want = rm(torch.tensor([want_ids]), torch.ones(1, len(want_ids), dtype=torch.long)).reward
    assert torch.allclose(got, want, atol=1e-5)
    norm = scorer.normalize(got, torch.tensor([False]))
    assert norm.item() == pytest.approx((want.item() - 1.0) / 2.0 - 0.5, abs=1e-5)


def test_gradient_checkpointing_recomputes_each_layer_in_backward_and_keeps_the_gradients(compose):
    """`<model>.gradient_checkpointing: true` reaches the layers of the LM and of the reward
    model and critic built on its body: each layer runs again during backward (activations
    are not kept), and the gradients are the ones computed without it."""
    from inform.models.value_model import ValueModel

    cfg = validate(compose())
    tok = load_tokenizer(cfg.policy)
    ids = torch.randint(5, len(tok), (3, 12))
    mask = torch.ones_like(ids)
    losses = {
        "lm": (lambda lm: lm, lambda m: m(input_ids=ids, attention_mask=mask).logits.pow(2).mean()),
        "rm": (lambda lm: RewardModel.from_causal_lm(lm, {"kind": "scalar"}), lambda m: m(ids, mask).reward.sum()),
        "critic": (ValueModel.from_causal_lm, lambda m: m(ids, mask).pow(2).mean()),
    }
    grads, calls = {}, {}
    for name, (wrap, loss) in losses.items():
        for ckpt in (False, True):
            with warnings.catch_warnings():  # the current transformers API, not its deprecated alias
                warnings.simplefilter("error", FutureWarning)
                lm = build_causal_lm(OmegaConf.merge(cfg.policy, {"gradient_checkpointing": ckpt}), tok, seed=0).train()
            torch.manual_seed(1)  # the head's init
            model = wrap(lm)
            n = []
            # the layer's attention: the recompute runs inside the layer's checkpointed call
            lm.base_model.layers[0].attention.register_forward_hook(lambda *a, n=n: n.append(1))
            loss(model).backward()
            calls[ckpt] = len(n)
            grads[ckpt] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        assert calls == {False: 1, True: 2}, name
        assert torch.allclose(grads[True], grads[False], atol=1e-6), name
