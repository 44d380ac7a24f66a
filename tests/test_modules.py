"""The Lightning modules' losses against values computed by hand on a real tiny model."""
import torch
import torch.nn.functional as F

from inform.config import validate
from inform.data.collate import PreferenceCollator, SFTCollator, encode_prompts, encode_responses
from inform.models.causal_lm import build_causal_lm
from inform.models.reward_model import RewardModel
from inform.models.tokenizer import load_tokenizer
from inform.modules.reward import RewardModule
from inform.modules.sft import SFTModule
from inform.objectives import bt_loss


def test_sft_loss_is_mean_nll_of_response_tokens_only(compose):
    cfg = validate(compose())
    tok = load_tokenizer(cfg.policy)
    model = build_causal_lm(cfg.policy, tok, seed=0).eval()
    p = encode_prompts(tok, ["Copy: apple moon kite =", "Copy: owl ="], 16)
    r = encode_responses(tok, [" apple moon", " owl ! !"], 13)
    batch = SFTCollator(tok.pad_token_id)(list(zip(p, r)))
    loss, n_tokens = SFTModule(model)._loss(batch)

    logp = F.log_softmax(model(batch["input_ids"]).logits.double(), -1)  # causal: pad on the right is harmless
    nll = []
    for i in range(2):
        for t in range(len(p[i]), len(p[i]) + len(r[i])):  # response tokens (incl. EOS) only
            nll.append(-logp[i, t - 1, batch["input_ids"][i, t]])
    assert n_tokens == len(nll) == len(r[0]) + len(r[1])
    assert abs(loss.item() - torch.stack(nll).mean().item()) < 1e-5


def test_reward_module_scores_pairs_in_one_pass(compose):
    cfg = validate(compose())
    tok = load_tokenizer(cfg.policy)
    torch.manual_seed(0)
    rm = RewardModel.from_causal_lm(build_causal_lm(cfg.policy, tok, seed=0), {"kind": "scalar"}).eval()
    p = encode_prompts(tok, ["Copy: apple =", "Copy: moon ="], 16)
    c = encode_responses(tok, [" apple", " moon"], 13)
    r = encode_responses(tok, [" ! !", " owl owl owl"], 13)
    batch = PreferenceCollator(tok.pad_token_id)(list(zip(p, c, r)))
    module = RewardModule(rm, bt_loss)
    chosen, rejected = module.score_pairs(batch)
    with torch.no_grad():
        alone = [rm(torch.tensor([p[i] + s[i]]), torch.ones(1, len(p[i] + s[i]), dtype=torch.long)).reward.item() for s in (c, r) for i in range(2)]
    assert torch.allclose(torch.cat([chosen.reward, rejected.reward]), torch.tensor(alone), atol=1e-5)
    assert not module.wants_gather


def test_rollouts_with_a_static_kv_cache_are_the_dynamic_caches_tokens(compose):
    """ppo.kv_cache=static (for compiled decoding on a GPU) samples the same tokens from the
    same seed as the default dynamic cache, on left-padded prompts of different lengths. Its
    batches are padded to one width (the longest prompt of the data), so the cache has one
    shape for every batch (one compile), and the rollout drops that padding again."""
    from inform.data.collate import PromptBatches, PromptCollator
    from inform.rl.rollout import sample

    cfg = validate(compose())
    tok = load_tokenizer(cfg.policy)
    policy = build_causal_lm(cfg.policy, tok, seed=0)
    prompts = encode_prompts(tok, ["Copy: apple moon kite =", "Copy: owl =", "Copy: a b c d e f ="], 16)
    batch = PromptCollator(tok.pad_token_id)(list(enumerate(prompts)))
    assert batch["attention_mask"][:, 0].tolist().count(0) == 2  # two prompts are left-padded
    width = batch["input_ids"].shape[1] + 5
    wide = PromptCollator(tok.pad_token_id, width)(list(enumerate(prompts)))
    assert wide["input_ids"].shape == (3, width) and torch.equal(wide["input_ids"][:, 5:], batch["input_ids"])
    rollouts, caches, shapes = {}, {}, {}
    forward = policy.forward

    def recording_forward(*args, **kwargs):  # the cache object generate hands the model, per kv_cache
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        caches.setdefault(kv_cache, set()).add(type(cache).__name__)
        if type(cache).__name__ == "StaticCache":
            shapes.setdefault(kv_cache, set()).add((kwargs["input_ids"].shape[0], cache.layers[0].max_cache_len))  # (b, P + new)
        return forward(*args, **kwargs)

    policy.forward = recording_forward
    generate, compile_configs = policy.generate, []
    policy.generate = lambda *a, **kw: compile_configs.append(kw.get("compile_config")) or generate(*a, **kw)
    for kv_cache, b in (("dynamic", batch), ("static", wide)):
        torch.manual_seed(3)
        rollouts[kv_cache] = sample(policy, b["input_ids"], b["attention_mask"], max_new_tokens=12, temperature=0.8,
                                    top_p=0.9, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id, kv_cache=kv_cache)
    assert caches == {"dynamic": {"DynamicCache"}, "static": {"StaticCache"}}
    assert compile_configs[0] is None and compile_configs[1].dynamic is False  # a graph per shape, never dynamic shapes
    ((b, length),) = shapes["static"]  # one shape; its length counts the padded width (the last new token is not cached)
    assert b == 3 and width + 11 <= length <= width + 12
    dynamic, static = rollouts["dynamic"], rollouts["static"]
    assert dynamic.sequences.shape == (3, batch["input_ids"].shape[1] + 12) and policy.training  # mode restored
    assert static.prompt_len == dynamic.prompt_len and torch.equal(static.attention_mask, dynamic.attention_mask)
    assert torch.equal(dynamic.sequences, static.sequences) and torch.equal(dynamic.response_mask, static.response_mask)
    assert len({tuple(r) for r in dynamic.responses.tolist()}) == 3  # sampled, not a degenerate constant
    # PPO's batches under kv_cache=static: one width, that of the longest prompt, whatever the batch
    many = encode_prompts(tok, [f"Copy: {' '.join(['owl'] * n)} =" for n in range(1, 9)], 64)
    batches = PromptBatches(many, 2, 8, seed=0, pad_id=tok.pad_token_id, fixed_width=True)
    assert {batches[i]["input_ids"].shape[1] for i in range(8)} == {max(map(len, many))}
    per_batch = PromptBatches(many, 2, 8, seed=0, pad_id=tok.pad_token_id)
    assert len({per_batch[i]["input_ids"].shape[1] for i in range(8)}) > 1  # the default: each batch its own
    shapes.clear()
    for i in range(2):
        kv_cache = "static"
        sample(policy, batches[i]["input_ids"], batches[i]["attention_mask"], max_new_tokens=4, eos_id=tok.eos_token_id,
               pad_id=tok.pad_token_id, kv_cache="static")
    assert len(shapes["static"]) == 1  # two batches, one cache shape
    policy.forward = forward
    try:
        sample(policy, batch["input_ids"], batch["attention_mask"], max_new_tokens=2, eos_id=0, pad_id=0, kv_cache="paged")
    except ValueError as err:
        assert "kv_cache" in str(err)
    else:
        raise AssertionError("an unknown kv_cache was accepted")
