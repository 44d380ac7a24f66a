"""The synthetic task's ground truth, the public-schema loaders on fixture files, collation."""
import random

import pytest
import torch

from inform.data import sources, synthetic
from inform.data.collate import (
    IGNORE_INDEX, PreferenceCollator, PromptCollator, SFTCollator, encode_prompts, encode_responses,
    last_token_index, position_ids,
)
from inform.models.tokenizer import train_tiny_tokenizer
from tests.conftest import FIXTURES


# --------------------------------------------------------------------------- synthetic task
def test_quality_by_hand():
    instr = ["apple", "moon", "kite", "owl"]
    assert synthetic.quality(instr, ["apple", "moon", "kite", "owl"]) == 1.0
    # 2 hits, 1 wrong word, 1 repeat (wrong): 2/4 - 0.5 * 2/4 = 0.25
    assert synthetic.quality(instr, ["apple", "sun", "moon", "moon"]) == pytest.approx(0.25)
    # 4 hits, 5 fillers: 1 - 0.3 * (5 - 3) = 0.4
    assert synthetic.quality(instr, ["apple", "!", "moon", "!", "kite", "!", "owl", "!", "!"]) == pytest.approx(0.4)
    assert synthetic.quality(instr, []) == 0.0
    # human utility adds 0.1 * min(n_fill, 3) / 3
    assert synthetic.human_utility(instr, ["apple", "!", "!"]) == pytest.approx(0.25 + 0.1 * 2 / 3)
    assert synthetic.human_utility(instr, ["!"] * 5) == pytest.approx(-0.6 + 0.1)


def test_text_round_trip():
    p, r = synthetic.format_prompt(["apple", "moon"]), synthetic.format_response(["apple", "!", "moon"])
    assert p == "Copy: apple moon =" and r == " apple ! moon"
    assert synthetic.quality_of_text(p, r) == 1.0
    with pytest.raises(ValueError, match="not a synthetic-task prompt"):
        synthetic.parse_prompt("Human: hi")


def test_fillers_are_a_spurious_feature_of_demonstrations():
    """Fillers correlate with quality in demonstrations although q never rewards them."""
    rng = random.Random(0)
    q, f = [], []
    for _ in range(4000):
        instr = synthetic.sample_instruction(rng)
        resp = synthetic.demonstrate(instr, rng)
        q.append(synthetic.quality(instr, resp))
        f.append(resp.count("!"))
    corr = torch.corrcoef(torch.tensor([q, f], dtype=torch.float64))[0, 1].item()
    assert max(f) <= 3 and 0.3 < corr < 0.7


def test_human_preferences_follow_the_utility_with_noise():
    rows = synthetic.human_preferences(3000, seed=5)
    agree = [
        synthetic.human_utility(synthetic.parse_prompt(r["prompt"]), r["chosen"].split())
        > synthetic.human_utility(synthetic.parse_prompt(r["prompt"]), r["rejected"].split())
        for r in rows
    ]
    share = sum(agree) / len(agree)
    assert 0.75 < share < 0.97  # a noisy Bradley-Terry judge, mostly right
    assert any(r["chosen"].count("!") > 3 or r["rejected"].count("!") > 3 for r in rows)  # rambling seen
    assert synthetic.human_preferences(50, seed=5) == rows[:50]  # deterministic from its seed


# --------------------------------------------------------------------------- public schemas
def test_alpaca_farm_loaders():
    sft = sources.alpaca_farm_sft(path=str(FIXTURES / "alpaca_farm_sft.json"))
    assert len(sft) == 6 and sft[0]["prompt"] == "Human: Give three tips for staying healthy.\n\nAssistant:"
    assert sft[1]["prompt"] == "Human: Translate the sentence into French.\nThe cat sleeps.\n\nAssistant:"
    assert sft[1]["response"] == " Le chat dort."
    pref = sources.alpaca_farm_preferences(path=str(FIXTURES / "alpaca_farm_preference.json"))
    assert (pref[1]["chosen"], pref[1]["rejected"]) == (" 4", " 5")  # preference 2 -> output_2 wins
    prompts = sources.alpaca_farm_prompts(path=str(FIXTURES / "alpaca_farm_sft.json"), limit=2)
    assert prompts.column_names == ["prompt"] and len(prompts) == 2


def test_hh_rlhf_loader_splits_the_last_assistant_turn():
    pref = sources.hh_rlhf_preferences(path=str(FIXTURES / "hh_rlhf.jsonl"))
    assert len(pref) == 5
    assert pref[1]["prompt"].endswith("\n\nHuman: How often is that?\n\nAssistant:")
    assert pref[1]["chosen"] == " For most houseplants, about once a week." and pref[1]["rejected"] == " Never."
    sft = sources.hh_rlhf_sft(path=str(FIXTURES / "hh_rlhf.jsonl"))
    assert sft[3]["response"] == " Paris."


def test_tldr_loaders():
    pref = sources.tldr_preferences(path=str(FIXTURES / "tldr_comparisons.jsonl"))
    assert pref[0]["prompt"].startswith("SUBREDDIT: r/cats\nTITLE: New cat hides all day\nPOST: I adopted")
    assert pref[0]["prompt"].endswith("TL;DR:")
    assert pref[1]["chosen"] == " Roommate leaves all the dishes to me; how to raise it calmly?"  # choice 1
    sft = sources.tldr_sft(path=str(FIXTURES / "tldr_sft.parquet"))
    assert len(sft) == 3 and sft[2]["response"] == " Far-away job offer: take it?"


def test_missing_column_names_column_and_file():
    path = FIXTURES / "alpaca_farm_missing_column.json"
    with pytest.raises(sources.DataError, match=r"alpaca_farm_missing_column\.json.*missing column 'output_2'"):
        sources.alpaca_farm_preferences(path=str(path))


def test_missing_and_empty_files_are_named(tmp_path):
    with pytest.raises(sources.DataError, match=r"nope\.json: no such data file"):
        sources.alpaca_farm_sft(path=str(tmp_path / "nope.json"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(sources.DataError, match=r"empty\.jsonl: the file is empty"):
        sources.hh_rlhf_preferences(path=str(empty))


def test_empty_response_names_the_row(tmp_path):
    f = tmp_path / "pref.json"
    f.write_text('[{"instruction": "a", "input": "", "output_1": "x", "output_2": "y", "preference": 1},'
                 ' {"instruction": "b", "input": "", "output_1": "  ", "output_2": "y", "preference": 1}]')
    with pytest.raises(sources.DataError, match=r"pref\.json.*row 1 has an empty 'chosen'"):
        sources.alpaca_farm_preferences(path=str(f))


# --------------------------------------------------------------------------- collation
@pytest.fixture(scope="module")
def tok():
    return train_tiny_tokenizer()


def test_sft_collator_masks_prompt_and_pad(tok):
    p = encode_prompts(tok, ["Copy: apple moon =", "Copy: owl ="], 16)
    r = encode_responses(tok, [" apple moon", " owl"], 13)
    assert r[1] == [tok.convert_tokens_to_ids("Ġowl"), tok.eos_token_id]
    batch = SFTCollator(tok.pad_token_id)(list(zip(p, r)))
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    assert ids.shape == (2, len(p[0]) + len(r[0]))
    n0 = len(p[0])
    assert (labels[0, :n0] == IGNORE_INDEX).all() and labels[0, n0:].tolist() == r[0]
    n1 = len(p[1]) + len(r[1])
    assert (labels[1, n1:] == IGNORE_INDEX).all() and (mask[1, n1:] == 0).all() and (ids[1, n1:] == tok.pad_token_id).all()


def test_truncation_keeps_the_prompt_end_and_cuts_eos_of_long_responses(tok):
    long_prompt = "Copy:" + " apple" * 30 + " ="
    assert encode_prompts(tok, [long_prompt], 5)[0][-1] == tok.convert_tokens_to_ids("Ġ=")
    cut = encode_responses(tok, [" apple" * 20], 13)[0]
    assert len(cut) == 13 and tok.eos_token_id not in cut


def test_preference_and_prompt_collators(tok):
    p = encode_prompts(tok, ["Copy: apple =", "Copy: moon owl ="], 16)
    c = encode_responses(tok, [" apple", " moon owl"], 13)
    r = encode_responses(tok, [" !", ""], 13)
    batch = PreferenceCollator(tok.pad_token_id)(list(zip(p, c, r)))
    assert batch["input_ids"].shape[0] == 4
    assert last_token_index(batch["attention_mask"]).tolist() == [len(p[0] + c[0]) - 1, len(p[1] + c[1]) - 1, len(p[0] + r[0]) - 1, len(p[1] + r[1]) - 1]
    left = PromptCollator(tok.pad_token_id)([(7, p[0]), (9, p[1])])
    assert left["index"].tolist() == [7, 9]
    assert (left["attention_mask"][:, -1] == 1).all() and left["attention_mask"][0, 0] == 0
    assert position_ids(left["attention_mask"])[0].tolist()[-len(p[0]):] == list(range(len(p[0])))


def test_resumable_sampler_splits_an_epoch_between_ranks_and_resumes_each_where_it_stopped():
    """It is the distributed sampler too (Lightning's is off: it would reshuffle and lose the
    position): rank r takes order[r::R], n // R items each, and skips its own done batches."""
    from inform.data.collate import ResumableSampler

    one = ResumableSampler(10, shuffle=True, seed=3, batch_size=2)
    one.set_epoch(1)
    order = list(one)
    assert sorted(order) == list(range(10)) and len(one) == 10
    ranks = []
    for r in range(3):
        s = ResumableSampler(10, shuffle=True, seed=3, batch_size=2)
        s.set_replicas(3, r)
        s.set_epoch(1)
        ranks.append(list(s))
        assert len(s) == 3
    assert ranks == [order[0:9:3], order[1:9:3], order[2:9:3]]  # disjoint; the 10th item waits for the next epoch
    s = ResumableSampler(10, shuffle=True, seed=3, batch_size=1)
    s.set_replicas(3, 1)
    s.resume_at(1, 2)  # two batches of one done on rank 1
    assert list(s) == [order[7]]
