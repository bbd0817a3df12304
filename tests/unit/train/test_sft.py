"""Supervised fine-tuning (train/sft.py) on the tiny model: full and LoRA training, resuming from
the last complete checkpoint, batches of few lengths, refused inputs, a diverging run."""

import polars as pl
import pytest

from synth.arithmetic import make_problems
from synth.backends import HFBackend, SamplingParams
from train.sft import SFTSettings, train_sft


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

    from train.common import PAD_TO_MULTIPLE_OF

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


def test_training_on_no_rows_or_from_a_non_model(tmp_path, tiny_model_dir):
    from train.sft import SFTSettings, train_sft

    with pytest.raises(ValueError, match="no training rows"):
        train_sft(tiny_model_dir, pl.DataFrame({"prompt": [], "completion": []}), tmp_path / "a", SFTSettings())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a loadable model directory"):
        train_sft(
            tmp_path / "empty", pl.DataFrame({"prompt": ["a"], "completion": ["b"]}), tmp_path / "b", SFTSettings()
        )


def test_incomplete_checkpoint_is_skipped_not_loaded(tmp_path):
    from train.common import last_complete_checkpoint

    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-6").mkdir()
    (tmp_path / "checkpoint-6" / "model.safetensors").write_bytes(b"half")  # killed while saving
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-3"
    assert not (tmp_path / "checkpoint-6").exists()


def test_a_diverging_training_run_fails_and_saves_nothing(tiny_model_dir, tmp_path):
    from train.common import TrainingDiverged
    from train.sft import SFTSettings, train_sft

    rows = pl.DataFrame({"prompt": ["Q: 1+1=?\nA:"] * 8, "completion": [" 2"] * 8})
    out = tmp_path / "out"
    with pytest.raises(TrainingDiverged, match="diverged|non-finite weights"):
        train_sft(tiny_model_dir, rows, out, SFTSettings(max_steps=4, learning_rate=1e38, batch_size=4, save_every=2))
    assert not (out / "model").exists() and not (out / "checkpoints").exists()
