"""Trainer settings declared once (train/settings.py): defaults are the config's, every TRL
field a setting fills is one selftaught owns, and a round's settings come from the config."""

import dataclasses

import pytest

from selftaught.config.training import GRPOTrainingConfig, TrainingConfig
from selftaught.plugins import OBJECTIVES
from train.common import LoraSettings
from train.dpo import DPOSettings, verifier_settings
from train.grpo import GRPOSettings
from train.settings import config_default, from_config, owned_fields, setting, trl_fields
from train.sft import SFTSettings, warm_start_settings

SETTINGS = {"sft": SFTSettings, "dpo": DPOSettings, "grpo": GRPOSettings}


@pytest.mark.parametrize("cls", [SFTSettings, DPOSettings, GRPOSettings, LoraSettings])
def test_a_settings_default_is_its_config_keys_default(cls):
    for f in dataclasses.fields(cls):
        default = config_default(f.metadata["key"])
        convert = f.metadata["convert"]
        assert f.default == (convert(default) if convert else default), f"{cls.__name__}.{f.name}"


def test_the_library_defaults_are_the_configs():
    # the values that used to disagree: GRPO's max_steps (20 vs 500), DPO's learning rate (1e-4 vs 3e-4)
    t = TrainingConfig()
    assert GRPOSettings().max_steps == t.max_steps == 500
    assert DPOSettings().learning_rate == t.learning_rate == 3e-4
    assert GRPOSettings().num_generations == GRPOTrainingConfig().num_generations
    assert SFTSettings().lora == LoraSettings() and LoraSettings().target_modules == t.lora.target_modules


def test_a_round_reads_every_field_from_the_config():
    t = TrainingConfig(
        objective="grpo",
        max_steps=10,
        steps_growth=2.0,
        seed=7,
        learning_rate=1e-3,
        method="lora",
        trl={"max_grad_norm": 0.5},
        grpo=GRPOTrainingConfig(num_generations=8, prompts_per_step=2, loss_type="dr_grpo"),
    )
    s = from_config(GRPOSettings, t, 3)
    assert (s.max_steps, s.seed, s.learning_rate, s.method) == (40, 10, 1e-3, "lora")  # 10 x 2^2, 7 + 3
    assert (s.num_generations, s.prompts_per_step, s.loss_type) == (8, 2, "dr_grpo")
    assert s.trl == (("max_grad_norm", 0.5),)
    assert OBJECTIVES.get("grpo").obj.settings(t, 3) == s  # what a round's plan uses
    # an unset training.grpo reads its section's defaults
    assert from_config(GRPOSettings, TrainingConfig(objective="grpo"), 1) == GRPOSettings(seed=1)


def test_the_warm_start_and_the_verifier_keep_their_own_steps():
    t = TrainingConfig(max_steps=30, steps_growth=1.5, seed=4)
    assert warm_start_settings(t) == SFTSettings(max_steps=30, seed=4)
    assert from_config(SFTSettings, t, 2).max_steps == 45
    v = TrainingConfig(verifier={"max_steps": 12}, seed=4)
    s = verifier_settings(v, 2)
    assert (s.max_steps, s.seed, s.rpo_alpha, s.method) == (12, 6, 0.0, "full")


def test_trl_fields_come_from_the_declarations():
    g = trl_fields(GRPOSettings(num_generations=8, prompts_per_step=2, save_every=0, seed=3))
    assert g["per_device_train_batch_size"] == 16 and g["num_generations"] == 8
    assert (g["seed"], g["data_seed"], g["save_strategy"]) == (3, 3, "no")
    d = trl_fields(DPOSettings(rpo_alpha=0.5))
    assert d["loss_type"] == ["sigmoid", "sft"] and d["loss_weights"] == [1.0, 0.5]
    d = trl_fields(DPOSettings(rpo_alpha=0.0))
    assert d["loss_type"] == ["sigmoid"] and d["loss_weights"] is None
    s = trl_fields(SFTSettings(batch_size=4, save_every=5))
    assert (s["per_device_train_batch_size"], s["save_strategy"], s["save_steps"]) == (4, "steps", 5)


@pytest.mark.parametrize("objective", sorted(SETTINGS))
def test_every_field_a_setting_fills_is_owned(objective):
    """The config check refuses exactly what the trainers set: both come from the declarations."""
    cls = SETTINGS[objective]
    owned = dict(OBJECTIVES.get(objective).caps.own_fields)
    assert set(trl_fields(cls())) <= set(owned)
    assert dict(owned_fields(cls)).items() <= owned.items() | {
        ("per_device_train_batch_size", "training.grpo.prompts_per_step")
    }
    with pytest.raises(ValueError, match="selftaught sets"):
        TrainingConfig(objective=objective, trl={next(iter(trl_fields(cls()))): 1})


def test_a_setting_must_name_a_config_key():
    with pytest.raises(KeyError, match="nope is not a training config key"):
        setting("nope")
