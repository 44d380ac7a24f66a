"""experiments/rm_accuracy/evaluate.py: the accuracy math on a real tiny reward model, the
evaluation-set syntax and skipping, and the script end to end on the smoke sweep's RMs with
the public-schema fixtures read through the real loaders."""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import re
import sys

import pytest
import torch
from omegaconf import OmegaConf
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from inform.data import sources
from inform.models.reward_model import RewardModel
from inform.models.tokenizer import train_tiny_tokenizer
from inform.pipeline.reward_fit import pair_examples
from inform.pipeline.reward_fit import pair_accuracy
from inform.tracking.wandb_offline import find_runs
from tests.conftest import FIXTURES, ROOT

spec = importlib.util.spec_from_file_location("rm_accuracy_evaluate", ROOT / "experiments" / "rm_accuracy" / "evaluate.py")
ev = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = ev  # its dataclasses look their module up there
spec.loader.exec_module(ev)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIXTURE_SETS = [
    f"hh-helpful=hh:{FIXTURES / 'hh_rlhf.jsonl'}",  # the fixture is one file: it stands in for both HH subsets
    f"hh-harmless=hh:{FIXTURES / 'hh_rlhf.jsonl'}",
    f"alpaca-farm=alpaca:{FIXTURES / 'alpaca_farm_preference.json'}",
    f"tldr=tldr:{FIXTURES / 'tldr_comparisons.jsonl'}",
    "synthetic=synthetic:2000:5",
]


@pytest.fixture(scope="module")
def tok():
    return train_tiny_tokenizer()


@pytest.fixture(scope="module")
def rm(tok):
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, rotary_pct=0.25)
    return RewardModel.from_causal_lm(GPTNeoXForCausalLM(cfg), {"kind": "scalar"}).eval()


def fixture_examples(tok, max_prompt=16, max_response=13):
    cfg = OmegaConf.create({"data": {"max_prompt_tokens": max_prompt, "max_response_tokens": max_response, "on_long_prompt": "truncate"}})
    rows = [*sources.hh_rlhf_preferences(path=str(FIXTURES / "hh_rlhf.jsonl")), *sources.synthetic_preferences(n=9, seed=5)]
    return pair_examples(tok, {k: [r[k] for r in rows] for k in ("prompt", "chosen", "rejected")}, cfg)


# --------------------------------------------------------------------------- the math
def test_pairwise_accuracy_by_hand():
    r_c = torch.tensor([1.0, 2.0, 0.5, 3.0])
    r_r = torch.tensor([0.0, 3.0, 0.5, 1.0])
    # d = (1, -1, 0, 2): wins 1 and 4, the tie counts as wrong
    out = ev.pairwise_accuracy(r_c, r_r, score_std=2.0)
    assert out["n"] == 4 and out["accuracy"] == 0.5
    assert out["se"] == pytest.approx(math.sqrt(0.5 * 0.5 / 4)) == 0.25
    assert out["margin"] == pytest.approx(0.5) and out["margin_sd"] == pytest.approx(0.25)
    assert ev.pairwise_accuracy(r_c, r_r)["margin_sd"] is None


def test_scores_match_direct_scoring_of_each_sequence(tok, rm):
    examples = fixture_examples(tok)
    r_c, r_r = ev.score_pairs(rm, examples, tok.pad_token_id, batch_size=3)

    @torch.no_grad()
    def one(ids: list[int]) -> float:  # a single unpadded sequence
        return rm(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)).reward.item()

    for i, (p, c, r) in enumerate(examples):
        assert r_c[i].item() == pytest.approx(one(p + c), abs=1e-5)
        assert r_r[i].item() == pytest.approx(one(p + r), abs=1e-5)
    out = ev.pairwise_accuracy(r_c, r_r)
    assert out["accuracy"] == pytest.approx(pair_accuracy(rm, examples, tok.pad_token_id))  # the pipeline's own count
    assert out["margin"] == pytest.approx((r_c - r_r).mean().item())
    r_c1, _ = ev.score_pairs(rm, examples, tok.pad_token_id, batch_size=64)  # batching does not change scores
    torch.testing.assert_close(r_c1, r_c, atol=1e-5, rtol=0)


def test_constant_head_gives_hand_values(tok, rm):
    """Head weights 0, bias 0.7: every reward is 0.7, so every pair ties: accuracy 0, margin 0."""
    examples = fixture_examples(tok)
    head = rm.head.linear
    saved = head.weight.detach().clone(), head.bias.detach().clone()
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(0.7)
    try:
        r_c, r_r = ev.score_pairs(rm, examples, tok.pad_token_id, batch_size=4)
        assert torch.allclose(r_c, torch.full_like(r_c, 0.7)) and torch.allclose(r_r, torch.full_like(r_r, 0.7))
        out = ev.pairwise_accuracy(r_c, r_r)
        assert (out["n"], out["accuracy"], out["se"], out["margin"]) == (len(examples), 0.0, 0.0, 0.0)
    finally:
        with torch.no_grad():
            head.weight.copy_(saved[0])
            head.bias.copy_(saved[1])


def test_token_limits_come_from_the_flags_then_the_spec_then_hh_defaults():
    trained = {"data.max_prompt_tokens": 16, "data.max_response_tokens": 13}  # read_spec's flat keys
    assert ev.token_limits(trained, None, None) == (16, 13)
    assert ev.token_limits(trained, 8, None) == (8, 13)
    assert ev.token_limits({}, None, None) == (512, 256)


# --------------------------------------------------------------------------- sets and labels
def test_set_syntax():
    s = ev.parse_set("hh-online=hh:Anthropic/hh-rlhf:helpful-online:test")
    assert (s.name, s.loader, s.kwargs) == ("hh-online", "hh", {"path": "Anthropic/hh-rlhf", "data_dir": "helpful-online", "split": "test"})
    assert ev.parse_set("t=tldr:x.jsonl").kwargs == {"path": "x.jsonl"}
    assert ev.parse_set("a=alpaca:tatsu-lab/alpaca_farm:alpaca_human_preference").kwargs["name"] == "alpaca_human_preference"
    assert ev.parse_set("s=synthetic:100:7").kwargs == {"n": 100, "seed": 7}
    for bad in ("nohh", "x=unknown:path", "x=hh", "x=synthetic:abc"):
        with pytest.raises(ValueError, match="--set"):
            ev.parse_set(bad)
    names = [s.name for s in ev.choose_sets(["extra=synthetic:10"], None)]
    assert names == ["hh-helpful", "hh-harmless", "alpaca-farm", "tldr", "synthetic", "extra"]
    assert [s.name for s in ev.choose_sets([], "synthetic,tldr")] == ["synthetic", "tldr"]
    with pytest.raises(ValueError, match="unknown set"):
        ev.choose_sets([], "nope")


def test_unloadable_set_is_skipped_by_name_and_none_loading_stops(tmp_path, caplog):
    sets = [ev.parse_set(f"gone=hh:{tmp_path / 'missing.jsonl'}"), ev.parse_set("synthetic=synthetic:20:5")]
    with caplog.at_level(logging.WARNING):
        loaded, skipped = ev.load_sets(sets, limit=None)
    assert list(loaded) == ["synthetic"] and len(loaded["synthetic"]) == 20
    assert list(skipped) == ["gone"] and "missing.jsonl" in skipped["gone"]
    assert any("set gone skipped" in r.getMessage() for r in caplog.records)
    with pytest.raises(RuntimeError, match="no evaluation set could be loaded.*gone"):
        ev.load_sets(sets[:1], limit=None)


def test_labels_show_what_differs(tmp_path):
    def export(name, objective, loss, head, seed=0):
        d = tmp_path / name
        d.mkdir()
        spec = {"keys": {"objective": {"name": objective, "loss": loss, "head": head},  # as inform/pipeline/graph.py writes it
                         "reward": {"name": "tiny"}, "rm": {"data": "labels", "init": "sft"}, "seed": seed}, "upstream": {}}
        (d / "spec.json").write_text(json.dumps(spec))
        return d

    ib = {"kind": "ib", "latent_dim": 128}
    paths = [export("rm-a", "ib", {"beta": 0.1}, ib), export("rm-b", "ib", {"beta": 0.01}, ib, seed=1),
             export("rm-c", "bt", {}, {"kind": "scalar"}), export("rm-d", "bt", {}, {"kind": "scalar"}),
             export("rm-e", "bsr", {"bsr_lambda": 1e-3}, {"kind": "scalar"})]
    # β and λ always; D is the same wherever present; the seed differs; two BT RMs need their folders
    assert ev.labels(paths) == ["ib β=0.1 seed=0", "ib β=0.01 seed=1", "bt seed=0 (rm-c)", "bt seed=0 (rm-d)", "bsr λ=0.001 seed=0"]


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_evaluate_on_the_smoke_sweeps_reward_models(sweep, tmp_path):
    """The smoke sweep's two IB proxies (beta 0.1, 0.01) and its gold RM on the fixtures and the
    synthetic set. Only the gold RM was trained on the synthetic "human" pairs (another seed):
    it must rank them well above chance; the proxies learned the gold labels of SFT samples."""
    root, _ = sweep
    out = tmp_path / "rm_accuracy"
    args = [str(root / "artifacts"), "--stages", "rm,gold", "--limit", "400", "--out", str(out), "--device", "cpu"]
    for s in FIXTURE_SETS:
        args += ["--set", s]
    result = ev.main(args)

    sets = ["hh-helpful", "hh-harmless", "alpaca-farm", "tldr", "synthetic"]
    assert result["sets"] == sets and result["skipped"] == {}
    table = result["table"]
    assert sorted(table) == ["bt stage=gold", "ib β=0.01", "ib β=0.1"], table.keys()
    for row in table.values():
        assert list(row) == sets
        assert [row[s]["n"] for s in sets] == [5, 5, 5, 3, 400]
        for s in sets:
            assert 0.0 <= row[s]["accuracy"] <= 1.0 and row[s]["se"] >= 0.0 and math.isfinite(row[s]["margin"])
    assert table["bt stage=gold"]["synthetic"]["accuracy"] > 0.6  # it was trained on this task's preferences

    md = (out / "results.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| RM |"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == sets
    first_table = md.split("## Mean margin")[0]
    rows = [line for line in first_table.splitlines() if line.startswith("| ") and not line.startswith("| RM |")]
    assert sorted(r.split("|")[1].strip() for r in rows) == sorted(table)
    for r in rows:
        cells = r.strip("|").split("|")[1:]
        accs = [float(re.match(r"\s*([0-9.]+) ± ([0-9.]+) \(n=(\d+)\)", c).group(1)) for c in cells]
        assert len(accs) == len(sets) and all(0.0 <= a <= 1.0 for a in accs)

    png = (out / "rm_accuracy.png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 10_000
    (run,) = find_runs(out)
    assert run.job_type == "analysis" and run.group == "rm-accuracy"
    assert any(f.endswith(".png") for f in run.files)
    assert run.summary["acc/bt_stage=gold/synthetic"] == pytest.approx(table["bt stage=gold"]["synthetic"]["accuracy"])
    assert not (root / "artifacts" / "rm_accuracy").exists()  # nothing written into the shared sweep
