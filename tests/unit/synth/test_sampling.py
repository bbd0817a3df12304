"""The tiny model's character tokenizer and seeded sampling through the HF backend
(synth/backends.py, synth/sampling.py)."""

import pytest

from synth.arithmetic import make_problems
from synth.backends import HFBackend, SamplingParams, cut_at_stop, load_backend
from synth.sampling import sample
from synth.tiny import char_tokenizer


def test_char_tokenizer_round_trips_text():
    tok = char_tokenizer()
    text = "Q: 347+85=? A: 7+5+0=12:2; answer 432"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.padding_side == "left"


def test_sampling_is_seeded_and_shaped(tiny_model_dir):
    be = HFBackend(str(tiny_model_dir), batch_size=8)
    prompts = ["Q: 1+2=? A:", "Q: 33+4=? A:", "Q: 5+5=? A:"]
    p = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=7)
    a, b = be.generate(prompts, p), be.generate(prompts, p)
    assert a == b and [len(x) for x in a] == [3, 3, 3]
    assert be.generate(prompts, SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=8)) != a
    greedy = be.generate(prompts, SamplingParams(max_new_tokens=12))
    assert greedy == be.generate(prompts, SamplingParams(max_new_tokens=12))


def test_samples_table_carries_lineage(tiny_model_dir):
    prompts = make_problems({1: 4}, seed=0)
    be = load_backend("hf", str(tiny_model_dir), batch_size=16)
    df = sample(be, prompts, SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=3), "r002", "r001", "abc")
    assert df.height == 8 and set(df["policy_id"]) == {"r001"} and set(df["policy_hash"]) == {"abc"}
    assert df["sample_idx"].to_list() == [0, 1] * 4 and set(df["seed"]) == {3}


def test_bad_sampling_params_and_backends():
    with pytest.raises(ValueError, match="identical samples"):
        SamplingParams(n=2, temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="unknown generation backend 'vllmx'"):
        load_backend("vllmx", "x")
    assert cut_at_stop("a; b\nc", ["\n", ";"]) == "a"
