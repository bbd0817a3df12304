"""Scale-out on existing engines: training under `accelerate launch` in several processes
(gloo on CPU here; DDP / FSDP / DeepSpeed on a GPU node through an accelerate config)."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines.build import build_definitions
from selftaught.store import Store
from synth.arithmetic import make_problems
from synth.tiny import TinySpec, build_tiny_model
from tests.conftest import copy_config, fresh_dagster_home, make_tiny_config
from train.artifact import read_provenance
from train.launch import LaunchError, launch
from train.sft import LoraSettings, SFTSettings

TINY = TinySpec(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=64)


@pytest.mark.slow
def test_two_training_processes_finish_and_one_adapter_is_saved(tmp_path):
    init = build_tiny_model(TINY, tmp_path / "init")
    rows = make_problems({1: 40}, seed=1).select("prompt", pl.col("target").alias("completion"))
    settings = SFTSettings(method="lora", max_steps=6, batch_size=4, lora=LoraSettings(r=4, alpha=8))
    lines = []
    metrics = launch("sft", init, rows, tmp_path / "out", settings, processes=2, log=lines.append)
    out = tmp_path / "out"
    ranks = sorted(p.name for p in (out / "ranks").glob("*.json"))
    assert ranks == ["rank-0.json", "rank-1.json"]  # both ranks finished
    assert metrics["processes"] == 2 and metrics["steps"] == 6
    assert [p.name for p in out.glob("adapter")] == ["adapter"] and (out / "model" / "model.safetensors").is_file()
    assert not (out / "rows.parquet").exists() and not (out / "checkpoints").exists()
    assert any("rank 1 of 2 finished" in line for line in lines)


def test_a_failed_launch_says_why(tmp_path):
    init = tmp_path / "no-model"
    rows = pl.DataFrame({"prompt": ["Q"], "completion": ["A"]})
    with pytest.raises(LaunchError, match="exited with .*not a loadable model"):
        launch("sft", init, rows, tmp_path / "out", SFTSettings(max_steps=1), processes=1,
               config_file=None, extra=("--cpu",), log=lambda _: None)


@pytest.mark.slow
def test_a_round_trains_in_two_processes_and_writes_provenance_once(tmp_path):
    config = copy_config(make_tiny_config(tmp_path), tmp_path / "ddp.yaml", max_rounds=1,
                         training__launcher={"processes": 2})
    with fresh_dagster_home(tmp_path), dg.DagsterInstance.get() as instance:
        defs = build_definitions(config)
        assert defs.resolve_job_def("setup").execute_in_process(instance=instance).success
        instance.add_dynamic_partitions("rounds", ["r001"])
        result = defs.resolve_job_def("round").execute_in_process(instance=instance, partition_key="r001",
                                                                  raise_on_error=False)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        logs = " ".join(r.user_message for r in instance.all_logs(result.run_id))
    store = Store(defs.resources["experiment"].storage_root)
    artifact = store.model_dir("r001")
    prov = read_provenance(artifact)
    assert prov["metrics"]["processes"] == 2 and prov["policy_id"] == "r001"
    assert len(list(Path(artifact).rglob("provenance.json"))) == 1
    assert "training in 2 processes" in logs and "rank 1 of 2 finished" in logs
