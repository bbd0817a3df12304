"""GRPO training (train/grpo.py): the presets' settings, config errors that name the key and the TRL
version, a LoRA adapter trained and continued."""

import polars as pl
import pytest

from filters.rewards import VerifierReward
from filters.verifiers import get_verifier
from selftaught.config import ConfigError, load_config, parse_config
from tests.helpers import ROOT

PRESETS = ROOT / "pipelines" / "presets"


def test_grpo_presets_set_what_defines_them(tmp_path):
    from train.grpo import GRPOSettings, grpo_config
    from train.settings import from_config

    grpo, dr, ttrl = (load_config(PRESETS / f"{n}.yaml") for n in ("grpo", "dr_grpo", "ttrl"))
    assert grpo.training.objective == dr.training.objective == ttrl.training.objective == "grpo"
    g = grpo_config(from_config(GRPOSettings, grpo.training, 1), str(tmp_path))
    d = grpo_config(from_config(GRPOSettings, dr.training, 1), str(tmp_path))
    assert (g.loss_type, g.scale_rewards, d.loss_type, d.scale_rewards) == ("grpo", "group", "dr_grpo", "none")
    assert g.per_device_train_batch_size == 32 and g.num_generations == 8
    # Same rollout budget as the demo's offline round: steps x prompts x generations = pool x n.
    demo = load_config(PRESETS / "demo.yaml")
    assert grpo.training.max_steps * 4 * 8 == sum(demo.task.pool.values()) * demo.sampling.n
    assert ttrl.verification.verifier == "majority"


def test_grpo_config_errors_name_the_key_and_the_trl_version():
    base = {"training": {"objective": "grpo"}}
    for bad, message in [
        ({"training": {"objective": "grpo", "grpo": {"loss_type": "ppo"}}}, "grpo.loss_type 'ppo' is not one of"),
        ({"training": {"objective": "grpo", "trl": {"num_generationz": 2}}}, "not GRPOConfig fields of"),
        ({"training": {"objective": "grpo", "grpo": {"trl": {"top_k": 2}}}}, "grpo.trl moved to training.trl"),
        ({"training": {"objective": "sft", "grpo": {}}}, "training.grpo only applies with training.objective grpo"),
        ({**base, "repair": {"mode": "reflect"}}, "work on offline samples"),
        ({**base, "verification": {"verifier": "judge"}}, "judge verifier is not supported"),
        ({**base, "task": {"curriculum": {}}}, r"\['task.curriculum'\] work on offline samples"),
        ({"training": {"objective": "grpo", "trl": {"num_iterations": 2}}}, "one generation batch per optimizer"),
        ({"training": {"objective": "grpo", "trl": {"beta": 0.1}}}, r"selftaught sets beta \(use training.grpo.beta\)"),
        ({**base, "model": {"warm_start": {"grpo": {}}}}, "model.warm_start.grpo does not apply"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config(bad)


def test_grpo_trains_a_lora_adapter_and_continues_it(tmp_path, tiny_model_dir):
    """method lora: the adapter trains on the frozen base, and a later round continues it."""
    from train.common import LoraSettings
    from train.grpo import GRPOSettings, train_grpo

    prompts = pl.DataFrame({"prompt_id": ["a", "b"], "prompt": ["Q: 1+2=? A:", "Q: 2+2=? A:"], "reference": ["3", "4"]})
    s = GRPOSettings(
        max_steps=2,
        num_generations=2,
        prompts_per_step=2,
        max_completion_length=8,
        method="lora",
        lora=LoraSettings(r=2, alpha=4, target_modules=("q_proj", "v_proj")),
    )
    first = VerifierReward(get_verifier("arithmetic"), tmp_path / "r1", "r001", "r001")
    m = train_grpo(tiny_model_dir, prompts, first, tmp_path / "one", s)
    assert m["steps"] == 2 and (tmp_path / "one" / "adapter" / "adapter_config.json").is_file()
    assert first.table().height == 2 * 2 * 2
    second = VerifierReward(get_verifier("arithmetic"), tmp_path / "r2", "r002", "r002")
    m2 = train_grpo(tiny_model_dir, prompts, second, tmp_path / "two", s, adapter_init=tmp_path / "one" / "adapter")
    assert m2["steps"] == 2 and (tmp_path / "two" / "adapter" / "adapter_config.json").is_file()
