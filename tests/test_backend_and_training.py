import json

import polars as pl
import pytest

from selftaught.store import is_complete
from synth.arithmetic import make_problems
from synth.backends import HFBackend, SamplingParams, cut_at_stop, load_backend
from synth.sampling import sample
from synth.tiny import char_tokenizer
from train.artifact import read_provenance, weights_hash, write_provenance
from train.sft import SFTSettings, train_sft


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


def _rows(n=32):
    probs = make_problems({1: n}, seed=1)
    return probs.select("prompt", pl.col("target").alias("completion"))


def test_full_fine_tune_learns_and_writes_a_loadable_model(tiny_model_dir, tmp_path):
    m = train_sft(
        tiny_model_dir, _rows(), tmp_path / "art", SFTSettings(max_steps=30, learning_rate=3e-3, batch_size=8)
    )
    assert m["steps"] == 30 and m["final_loss"] < m["train_loss"]
    out = HFBackend(str(tmp_path / "art" / "model")).generate(["Q: 1+2=? A:"], SamplingParams(max_new_tokens=30))
    assert isinstance(out[0][0], str)
    assert not (tmp_path / "art" / "checkpoints").exists()


def test_lora_writes_adapter_and_merged_model(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    s = SFTSettings(method="lora", max_steps=5, learning_rate=1e-2, batch_size=8)
    train_sft(tiny_model_dir, _rows(16), tmp_path / "art", s)
    assert (tmp_path / "art" / "adapter" / "adapter_config.json").is_file()
    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "art" / "model").state_dict()
    changed = [k for k in before if "q_proj" in k and not before[k].equal(after[k])]
    assert changed, "merged LoRA weights should differ from the base"


def test_training_resumes_from_its_last_checkpoint(tiny_model_dir, tmp_path):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 6:
                raise RuntimeError("simulated crash")

    out = tmp_path / "art"
    s = SFTSettings(max_steps=8, batch_size=8, save_every=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_sft(tiny_model_dir, _rows(), out, s, callbacks=[Crash()])
    assert (out / "checkpoints" / "checkpoint-4").is_dir() and not (out / "model").exists()
    m = train_sft(tiny_model_dir, _rows(), out, s)
    assert m["resumed"] and m["steps"] == 8 and (out / "model").is_dir()
    whole = train_sft(tiny_model_dir, _rows(), tmp_path / "whole", s)
    assert m["trained_tokens"] == whole["trained_tokens"] > 0  # TRL's own count restarted at the resume


def test_training_batches_come_in_few_lengths(tiny_model_dir, tmp_path):
    """Every batch is padded to a multiple of PAD_TO_MULTIPLE_OF tokens: on a CPU each new
    matmul shape stays in oneDNN's kernel cache, and a batch per length made resident memory
    grow through training and from round to round (issue 25, class 8)."""
    import torch

    from train.sft import PAD_TO_MULTIPLE_OF

    lengths = []

    def record(module, args):
        if isinstance(module, torch.nn.Embedding) and args:
            lengths.append(args[0].shape[-1])

    rows = pl.DataFrame(
        {"prompt": [f"Q: {'1+' * k}1=? A:" for k in range(1, 41)], "completion": [f" {k + 1}" for k in range(1, 41)]}
    )  # 40 distinct lengths
    hook = torch.nn.modules.module.register_module_forward_pre_hook(record)  # every module's forward
    try:
        train_sft(tiny_model_dir, rows, tmp_path / "art", SFTSettings(max_steps=10, batch_size=4, max_length=128))
    finally:
        hook.remove()
    assert len(lengths) >= 10 and PAD_TO_MULTIPLE_OF >= 8  # 1 would be TRL's own batch per length
    assert all(n % PAD_TO_MULTIPLE_OF == 0 for n in lengths), sorted(set(lengths))


def test_empty_training_set_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="no training rows"):
        train_sft(tiny_model_dir, _rows().head(0), tmp_path, SFTSettings())


def test_provenance_records_weights_hash(tiny_model_dir, tmp_path):
    import shutil

    art = tmp_path / "art"
    shutil.copytree(tiny_model_dir, art / "model")
    assert not is_complete(art)
    rec = write_provenance(art, policy_id="r001", parent={"policy_id": "base"})
    assert is_complete(art) and read_provenance(art) == json.loads((art / "provenance.json").read_text())
    assert rec["weights_hash"] == weights_hash(art)
