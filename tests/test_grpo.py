"""Online RL rounds (training.objective grpo): TRL's GRPOTrainer with the project's verifiers
as rewards, every rollout kept as the round's rollouts table, resumable after kill -9."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from filters.rewards import TooManyUnverifiable, VerifierReward
from filters.verifiers import get_verifier
from selftaught import schemas
from selftaught.config import ConfigError, load_config, parse_config
from tests.helpers import copy_config, make_tiny_config, run_rounds

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ROOT / "pipelines" / "presets"


class _State:
    def __init__(self, step):
        self.global_step = step


def test_unverifiable_rollouts_get_no_reward_and_a_mostly_unverifiable_batch_stops(tmp_path):
    reward = VerifierReward(
        get_verifier("arithmetic"), tmp_path / "rollouts", "r001", "r001", max_unverifiable_share=0.5, min_rollouts=8
    )
    prompts = ["Q: 2+3=?"] * 4
    # Prompt u has no reference: its rollouts cannot be verified.
    got = reward(
        prompts,
        [" 2+3+0=5:5; answer 5", " answer 6", " answer 5", " answer 5"],
        prompt_id=["p", "p", "u", "p"],
        reference=["5", "5", "", "5"],
        trainer_state=_State(0),
    )
    assert got == [1.0, 0.0, None, 1.0]  # unverifiable: None (TRL leaves it out), never 0
    table = reward.table().sort("prompt_id", "sample_idx")
    assert table["reward"].to_list() == [1.0, 0.0, 1.0, None] and table["sample_idx"].to_list() == [0, 1, 2, 0]
    assert table["verdict"].to_list() == ["correct", "incorrect", "correct", "unverifiable"]
    # The round's share so far counts (5 of 8 here), once min_rollouts are in: one batch is too noisy.
    with pytest.raises(
        TooManyUnverifiable,
        match="62% of the 8 rollouts so far unverifiable .*max_unverifiable_share 50%.*no reference answer",
    ):
        reward(prompts, [" answer 5"] * 4, prompt_id=["u", "u", "u", "u"], reference=[""] * 4, trainer_state=_State(1))
    # A resumed run regenerates from its checkpoint's step: those rollouts go, numbering continues.
    assert reward.forget_from(1) == 1
    again = VerifierReward(get_verifier("arithmetic"), tmp_path / "rollouts", "r001", "r001")
    again(
        ["Q: 1+1=?"] * 2, [" answer 2", " answer 3"], prompt_id=["p"] * 2, reference=["2"] * 2, trainer_state=_State(1)
    )
    assert again.table().filter(pl.col("prompt_id") == "p")["sample_idx"].to_list() == [0, 1, 2, 3, 4]
    assert again.table().filter(pl.col("prompt_id") == "u")["sample_idx"].to_list() == [0]


def test_label_free_reward_agrees_with_the_majority_and_gets_no_reference(tmp_path):
    from assets.recipes import rollout_prompts

    ttrl = load_config(PRESETS / "ttrl.yaml")
    prompts = pl.DataFrame({"prompt_id": ["p"], "prompt": ["Q: 2+3=?"], "reference": ["5"], "difficulty": [1]})
    assert rollout_prompts(ttrl, prompts).columns == ["prompt_id", "prompt"]  # nothing to read a label from
    assert "reference" in rollout_prompts(load_config(PRESETS / "grpo.yaml"), prompts).columns
    reward = VerifierReward(
        get_verifier("majority", ttrl.verification),
        tmp_path / "r",
        "r001",
        "r001",
        max_unverifiable_share=ttrl.verification.max_unverifiable_share,
    )
    # The majority (7) is wrong: label-free rewards agreement, not the truth it cannot see.
    got = reward(
        ["Q: 2+3=?"] * 4,
        [" answer 7", " answer 7", " answer 5", " answer 7"],
        prompt_id=["p"] * 4,
        trainer_state=_State(0),
    )
    assert got == [1.0, 1.0, 0.0, 1.0]
    assert reward.table()["parsed_reference"].to_list() == ["7"] * 4


def test_grpo_presets_set_what_defines_them(tmp_path):
    from train.grpo import grpo_config, settings_from_config

    grpo, dr, ttrl = (load_config(PRESETS / f"{n}.yaml") for n in ("grpo", "dr_grpo", "ttrl"))
    assert grpo.training.objective == dr.training.objective == ttrl.training.objective == "grpo"
    g = grpo_config(settings_from_config(grpo.training, 1), str(tmp_path))
    d = grpo_config(settings_from_config(dr.training, 1), str(tmp_path))
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


def _grpo_config(folder: Path, **grpo) -> Path:
    return copy_config(
        make_tiny_config(folder),
        folder / "grpo.yaml",
        max_rounds=1,
        training={
            "method": "full",
            "max_steps": 6,
            "learning_rate": 1e-4,
            "save_every": 2,
            "objective": "grpo",
            "grpo": {
                "num_generations": 4,
                "prompts_per_step": 2,
                "max_completion_length": 40,
                "temperature": 0.8,
                **grpo,
            },
        },
    )


@pytest.mark.slow
def test_a_grpo_round_keeps_every_rollout_and_trl_saw_the_groups_we_recorded(tmp_path):
    store, meta, _ = run_rounds(_grpo_config(tmp_path), tmp_path, 1)
    rollouts = store.read_table("rollouts", "r001")
    assert rollouts.height == 6 * 2 * 4 and rollouts["step"].unique().sort().to_list() == list(range(6))
    assert rollouts.select("prompt_id", "sample_idx").is_unique().all()
    assert (rollouts.group_by("step", "prompt_id").len()["len"] == 4).all()  # whole groups of num_generations
    # Nothing was drawn offline; the policy's provenance points at the rollouts it trained on.
    assert store.read_table("samples", "r001").height == 0
    from selftaught.files import file_hash
    from train.artifact import read_provenance

    prov = read_provenance(store.model_dir("r001"))
    assert prov["objective"] == "grpo" and prov["data_hash"] == file_hash(store.table_path("rollouts", "r001"))[:16]
    assert meta[("policy", "r001")]["rollouts"] == 48
    # TRL's logged share of zero-std groups (zero advantage) is the share of our recorded groups
    # whose rewards are all equal, step by step: it trained on exactly these rewards.
    equal = (
        rollouts.group_by("step", "prompt_id")
        .agg(flat=pl.col("reward").n_unique() == 1)
        .group_by("step")
        .agg(pl.col("flat").mean())
        .sort("step")
    )
    logged = {e["step"]: e["frac_reward_zero_std"] for e in prov["metrics"]["per_step"]}
    ours = dict(equal.iter_rows())
    assert logged and all(abs(logged[s] - ours[s - 1]) < 1e-6 for s in logged), (logged, ours)


@pytest.mark.slow
def test_a_grpo_round_killed_in_its_third_epoch_resumes_to_identical_rollouts_and_weights(tmp_path):
    """kill -9 after checkpoint-4 while step 5 rolls out; the rerun resumes. 4 prompts, 2 per
    step: the kill lands in epoch 3 (a checkpoint past epoch 1 is where the prompt order used
    to replay epoch 1's). The rollouts file, the weights and the evaluation are byte for byte
    those of an uninterrupted run."""

    def config(folder: Path) -> Path:
        folder.mkdir()
        return copy_config(_grpo_config(folder), folder / "grpo.yaml", task__pool={1: 4})

    def cli(folder: Path):
        env = {**os.environ, "DAGSTER_HOME": str(folder / "home"), "PYTHONPATH": str(ROOT)}
        return [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "--config",
            str(folder / "grpo.yaml"),
            "--rounds",
            "1",
        ], env

    killed, whole = tmp_path / "killed", tmp_path / "whole"
    config(killed), config(whole)
    cmd, env = cli(killed)
    store = killed / "store"
    ckpt = store / "work" / "r001" / "checkpoints" / "checkpoint-4"
    shards = store / "work" / "r001-rollouts"
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    end = time.monotonic() + 600
    while time.monotonic() < end and proc.poll() is None:  # past the checkpoint, a rollout after it written
        if (ckpt / "trainer_state.json").is_file() and (shards / "step-0000004.parquet").is_file():
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    out = proc.communicate()[0]
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "the summary asset failed" not in rerun.stderr, rerun.stderr[-3000:]  # it read the empty verdicts
    rollouts = schemas.validate(pl.read_parquet(store / "tables" / "rollouts" / "r001.parquet"), "rollouts")
    assert rollouts.height == 48 and rollouts.select("prompt_id", "sample_idx").is_unique().all()
    assert rollouts.group_by("step").len().sort("step")["len"].to_list() == [8] * 6
    from train.artifact import read_provenance

    assert read_provenance(store / "models" / "r001")["metrics"]["resumed"] is True

    cmd, env = cli(whole)
    once = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert once.returncode == 0, once.stderr[-3000:]
    for path in [
        "tables/rollouts/r001.parquet",
        "models/r001/model/model.safetensors",
        "tables/evaluation/r001.parquet",
    ]:
        a, b = (whole / "store" / path).read_bytes(), (store / path).read_bytes()
        if a != b and path.endswith(".parquet"):
            left, right = pl.read_parquet(whole / "store" / path), pl.read_parquet(store / path)
            diff = left.join(right, on=["prompt_id", "sample_idx"], suffix="_resumed").filter(
                pl.col("completion") != pl.col("completion_resumed")
            )
            raise AssertionError(
                f"{path} differs after the resume: {diff.select('step', 'prompt_id', 'sample_idx')}"
                if "step" in diff.columns
                else f"{path} differs after the resume: {diff.height} rows"
            )
        assert a == b, f"{path} differs after the resume"


def test_grpo_trains_a_lora_adapter_and_continues_it(tmp_path, tiny_model_dir):
    """method lora: the adapter trains on the frozen base, and a later round continues it."""
    from train.grpo import GRPOSettings, train_grpo
    from train.sft import LoraSettings

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
