"""Online RL rounds (training.objective grpo) through Dagster: TRL's GRPOTrainer with the
project's verifiers as rewards, every rollout kept as the round's rollouts table, resumable
after kill -9."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from selftaught import schemas
from tests.helpers import ROOT, copy_config, kill_when, make_tiny_config, run_rounds


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
    # past the checkpoint, a rollout after it written
    kill_when(
        cmd, env, lambda: (ckpt / "trainer_state.json").is_file() and (shards / "step-0000004.parquet").is_file(), 600
    )
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
