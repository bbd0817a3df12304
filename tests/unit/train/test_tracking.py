"""Experiment trackers (operations.tracking) and TRL settings passed through (training.trl): the
settings reach TRL's configs, bad ones are config errors, and the training dtype.
(Rounds that report to every tracker, offline: tests/e2e/test_tracking.py.)"""

from __future__ import annotations

import polars as pl
import pytest

from selftaught.config import ConfigError, load_config
from tests.helpers import tiny_config_in as _config


def test_trl_fields_pass_through_to_the_objectives_trl_config(tmp_path):
    import trl

    from train.common import trl_config
    from train.dpo import DPOSettings
    from train.grpo import GRPOSettings, grpo_config
    from train.sft import SFTSettings

    extra = (
        ("gradient_accumulation_steps", 2),
        ("lr_scheduler_type", "cosine"),
        ("max_grad_norm", 0.5),
        ("optim", "adafactor"),
    )
    sft = trl_config(
        "sft",
        SFTSettings(max_steps=10, trl=extra + (("packing", True), ("padding_free", True))),
        {"output_dir": str(tmp_path)},
        {"lr_scheduler_type": "linear"},
    )
    assert isinstance(sft, trl.SFTConfig)
    assert (
        sft.gradient_accumulation_steps,
        sft.lr_scheduler_type,
        sft.max_grad_norm,
        sft.optim,
        sft.packing,
        sft.padding_free,
    ) == (2, "cosine", 0.5, "adafactor", True, True)
    assert sft.report_to == [] and sft.activation_checkpointing is False  # selftaught's defaults stay
    dpo = trl_config("dpo", DPOSettings(max_steps=10, trl=extra), {"output_dir": str(tmp_path)}, {})
    assert isinstance(dpo, trl.DPOConfig) and dpo.optim == "adafactor"
    grpo = grpo_config(GRPOSettings(trl=(("max_grad_norm", 0.25),)), str(tmp_path))
    assert grpo.max_grad_norm == 0.25 and grpo.logging_steps == 1


@pytest.mark.parametrize(
    "trl, objective, message",
    [
        (
            {"gradient_acumulation_steps": 2},
            "sft",
            "['gradient_acumulation_steps'] are not SFTConfig fields of the installed TRL",
        ),
        ({"max_length": 128}, "sft", "max_length (use training.max_length)"),
        ({"beta": 0.5}, "dpo", "beta (use training.dpo.beta)"),
        ({"gradient_accumulation_steps": 4}, "grpo", "one generation batch per optimizer step"),
        ({"report_to": ["wandb"]}, "sft", "report_to (use operations.tracking.report_to)"),
        ({"optim": "adamw_nope"}, "sft", "refuses it: adamw_nope is not a valid OptimizerNames"),
        ({"packing": True}, "dpo", "['packing'] are not DPOConfig fields"),
        ({"padding_free": True}, "sft", "padding_free without packing leaves training.max_length unenforced"),
    ],
)
def test_bad_trl_fields_are_config_errors_naming_them(tmp_path, trl, objective, message):
    import trl as trl_package

    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, training__trl=trl, training__objective=objective))
    assert message in str(err.value)
    if "not" in message:
        assert trl_package.__version__ in str(err.value)


def test_grpo_trl_moved_to_training_trl(tmp_path):
    with pytest.raises(ConfigError, match="grpo.trl moved to training.trl"):
        load_config(_config(tmp_path, training__objective="grpo", training__grpo={"trl": {"max_grad_norm": 1.0}}))


def test_new_keys_at_their_defaults_change_no_hash(tmp_path):
    plain = load_config(_config(tmp_path))
    spelled = load_config(
        _config(tmp_path, training__trl={}, training__dtype="auto", operations__tracking={"report_to": []})
    )
    assert plain.round_hash() == spelled.round_hash() and plain.section_hash() == spelled.section_hash()
    tracked = load_config(_config(tmp_path, operations__tracking={"report_to": ["tensorboard"]}))
    assert tracked.round_hash() == plain.round_hash()  # tracking changes no output
    assert load_config(_config(tmp_path, training__trl={"max_grad_norm": 0.5})).round_hash() != plain.round_hash()


def test_an_unknown_tracker_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="report_to"):
        load_config(_config(tmp_path, operations__tracking={"report_to": ["comet"]}))


def test_training_dtype_is_the_weights_dtype_while_training(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from train.common import torch_dtype
    from train.sft import SFTSettings, train_sft

    assert torch_dtype("auto") == (
        torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    )
    rows = pl.DataFrame({"prompt": ["Q: 1+2=? A:"] * 8, "completion": [" 3"] * 8})
    train_sft(tiny_model_dir, rows, tmp_path / "bf16", SFTSettings(max_steps=2, batch_size=4, dtype="bfloat16"))
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16" / "model", dtype="auto")
    assert next(saved.parameters()).dtype == torch.bfloat16
    assert load_config(_config(tmp_path, training__dtype="bfloat16")).training.dtype == "bfloat16"
    with pytest.raises(ConfigError, match="training.dtype"):
        load_config(_config(tmp_path, training__dtype="float8"))
