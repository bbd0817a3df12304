"""Staged experiments through Dagster: an SFT round, then a GRPO round on prompts chosen by the
solve rate the SFT round measured (phases, sampling.prompt_band); per-round hashes; a kill -9
in the GRPO phase resumes to identical data."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from filters.select import judged
from selftaught.config import load_config
from tests.helpers import ROOT, fresh_dagster_home, kill_when, make_tiny_config, run_rounds

GRPO_PHASE = {
    "rounds": "2+",
    "name": "grpo",
    "sampling": {"prompt_band": {"low": 0.0, "high": 1.0}},
    "training": {
        "objective": "grpo",
        "max_steps": 4,
        "learning_rate": 1.0e-4,
        "save_every": 2,
        "grpo": {"num_generations": 4, "prompts_per_step": 2, "max_completion_length": 40, "temperature": 0.8},
    },
}


def _phased(folder: Path, grpo: dict = GRPO_PHASE) -> Path:
    """tiny.yaml (SFT) for round 1, a GRPO phase from round 2."""
    folder.mkdir(exist_ok=True)
    data = yaml.safe_load(make_tiny_config(folder).read_text())
    data.update(name="phased", max_rounds=2, phases=[{"rounds": 1, "name": "sft"}, grpo])
    path = folder / "phased.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_an_sft_round_then_a_grpo_round_on_the_prompts_it_measured(tmp_path):
    config = _phased(tmp_path)
    store, meta, _ = run_rounds(config, tmp_path, 2)
    cfg = load_config(config)
    from train.artifact import read_provenance

    sft, grpo = read_provenance(store.model_dir("r001")), read_provenance(store.model_dir("r002"))
    # Each round ran its phase's config, under its phase's hash and name; lineage crosses the switch:
    # the GRPO round continues the SFT round's policy.
    assert (sft["objective"], sft["phase"]) == ("sft", "sft")
    assert (grpo["objective"], grpo["phase"]) == ("grpo", "grpo")
    assert grpo["parent"]["policy_id"] == "r001" and grpo["parent"]["weights_hash"] == sft["weights_hash"]
    assert meta[("policy", "r001")]["round_config_hash"] == cfg.for_round(1).round_hash()
    assert meta[("policy", "r002")]["round_config_hash"] == cfg.for_round(2).round_hash() != cfg.round_hash()
    assert meta[("samples", "r002")]["phase"] == "grpo" and meta[("verdicts", "r001")]["phase"] == "sft"
    assert store.read_table("samples", "r002").height == 0 and store.read_table("samples", "r001").height > 0

    # The band: every reused prompt had 0 < solve rate < 1 in r001's verdicts; the rest are fresh.
    rates = (
        judged(store.read_table("samples", "r001"), store.read_table("verdicts", "r001"))
        .group_by("prompt_id")
        .agg(rate=(pl.col("verdict") == "correct").mean())
    )
    pool2 = store.read_table("prompts", "r002")
    reused = pool2.join(rates, on="prompt_id")
    m = meta[("prompts", "r002")]
    in_band = rates.filter((pl.col("rate") > 0) & (pl.col("rate") < 1)).height
    assert m["band_measured"] == rates.height and m["band_in_band"] == in_band
    assert m["band_reused"] == reused.height == min(in_band, pool2.height) and in_band > 0
    assert reused["rate"].is_between(0, 1, closed="none").all()
    assert m["band_fresh"] == pool2.height - reused.height and (pool2["round"] == "r002").all()
    # GRPO rolled out on exactly that pool; the zero-std share is recorded from TRL and from the rollouts.
    rollouts = store.read_table("rollouts", "r002")
    assert set(rollouts["prompt_id"]) <= set(pool2["prompt_id"])
    policy = meta[("policy", "r002")]
    assert 0 <= policy["rollout_zero_std_share"] <= 1 and 0 <= policy["frac_reward_zero_std_mean"] <= 1

    # A later phase's settings change: round 1 stays current, round 2 is stale.
    changed = _phased(tmp_path / "changed", {**GRPO_PHASE, "training": {**GRPO_PHASE["training"], "max_steps": 6}})
    text = changed.read_text().replace(str(tmp_path / "changed" / "store"), str(tmp_path / "store"))
    changed.write_text(text)
    from pipelines.progress import todo

    with fresh_dagster_home(tmp_path), dg.DagsterInstance.get() as instance:
        later = load_config(changed)
        assert todo(instance, later, "r001", store) == []
        assert todo(instance, later, "r002", store)[0] == "prompts"
        assert todo(instance, cfg, "r002", store) == []


@pytest.mark.slow
def test_an_experiment_in_phases_killed_in_its_grpo_phase_resumes_to_identical_data(tmp_path):
    """kill -9 after the GRPO round's checkpoint-2 while step 3 rolls out; the rerun skips the
    finished SFT round and resumes the GRPO one: rollouts, weights and evaluation equal an
    uninterrupted run's."""

    def cli(folder: Path):
        env = {**os.environ, "DAGSTER_HOME": str(folder / "home"), "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "pipelines.cli", "run", "--config", str(folder / "phased.yaml"), "--rounds", "2"]
        return cmd, env

    killed, whole = tmp_path / "killed", tmp_path / "whole"
    _phased(killed), _phased(whole)
    cmd, env = cli(killed)
    store = killed / "store"
    ckpt = store / "work" / "r002" / "checkpoints" / "checkpoint-2"
    shards = store / "work" / "r002-rollouts"
    kill_when(
        cmd, env, lambda: (ckpt / "trainer_state.json").is_file() and (shards / "step-0000002.parquet").is_file(), 900
    )
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    from train.artifact import read_provenance

    assert read_provenance(store / "models" / "r002")["metrics"]["resumed"] is True
    cmd, env = cli(whole)
    once = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert once.returncode == 0, once.stderr[-3000:]
    for path in [
        "tables/prompts/r002.parquet",
        "tables/rollouts/r002.parquet",
        "models/r002/model/model.safetensors",
        "tables/evaluation/r002.parquet",
    ]:
        assert (whole / "store" / path).read_bytes() == (store / path).read_bytes(), f"{path} differs after the resume"


@pytest.mark.slow
def test_a_probe_band_keeps_the_prompts_the_parent_policy_solves_sometimes(tmp_path):
    """measure: probe: before round 1 samples, the base model samples each fresh prompt
    probe_samples times; the pool keeps those it solved sometimes but not always."""
    folder = tmp_path / "probe"
    folder.mkdir()
    data = yaml.safe_load(make_tiny_config(folder).read_text())
    data["sampling"]["prompt_band"] = {"measure": "probe", "probe_samples": 4, "low": 0.0, "high": 1.0}
    data["max_rounds"] = 1
    config = folder / "probe.yaml"
    config.write_text(yaml.safe_dump(data))
    store, meta, _ = run_rounds(config, folder, 1)
    probe = pl.read_parquet(sorted((store.root / "work" / "r001-probe").glob("shard-*.parquet")))
    assert probe.height == 20 * 4  # the fresh pool (task.pool {1: 20}) x probe_samples
    m = meta[("prompts", "r001")]
    kept = store.read_table("prompts", "r001")
    assert m["band_measure"] == "probe" and m["band_measured"] == 20 and m["band_kept"] == kept.height
    assert 0 < kept.height < 20 and m["band_fresh"] == 0
    verdicts = store.read_table("verdicts", "r001")
    assert set(verdicts["prompt_id"]) == set(kept["prompt_id"])  # the round sampled the kept prompts only
