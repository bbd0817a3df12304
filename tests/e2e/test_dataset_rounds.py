"""GSM8K and label-free rounds through Dagster on the tiny model: the data path."""

import dagster as dg
import polars as pl
import pytest
import yaml

from pipelines.build import build_definitions
from selftaught import schemas
from tests.helpers import ROOT, TESTS, fresh_dagster_home

pytestmark = pytest.mark.slow


def _config(tmp_path, **verification):
    data = yaml.safe_load((TESTS / "configs" / "gsm8k_tiny.yaml").read_text())
    data["storage_root"] = str(tmp_path / "store")
    for which in ("train", "test"):
        data["task"][which]["path"] = str(ROOT / data["task"][which]["path"])
    if verification:
        data["verification"] = verification
        data["task"]["train"]["label_free"] = True
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _round(config, tmp_path):
    with fresh_dagster_home(tmp_path):
        defs = build_definitions(config)
        with dg.DagsterInstance.get() as instance:
            assert defs.resolve_job_def("setup").execute_in_process(instance=instance).success
            instance.add_dynamic_partitions("rounds", ["r001"])
            result = defs.resolve_job_def("round").execute_in_process(
                instance=instance, partition_key="r001", raise_on_error=False
            )
            checks = {
                e.event_specific_data.check_name: e.event_specific_data.passed
                for e in result.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION"
            }
    return defs.resources["experiment"].store, result, checks


def test_gsm8k_round_writes_numeric_verdicts(tmp_path):
    store, result, checks = _round(_config(tmp_path), tmp_path)
    prompts = store.read_table("prompts", "r001")
    assert prompts.height == 6 and prompts["prompt_id"].str.starts_with("gsm8k-").all()
    assert prompts["prompt"][0].startswith("Q: ") and prompts["reference"].str.contains(r"^-?\d+$").all()
    verdicts = schemas.validate(pl.read_parquet(store.table_path("verdicts", "r001")), "verdicts")
    assert verdicts.height == 24 and set(verdicts["verifier"]) == {"numeric@1"}
    assert verdicts["reason"].str.len_chars().min() > 0
    # A tiny untrained model solves nothing: the round stops at the blocking check, as designed.
    assert checks == {"unverifiable_share": True, "verdict_audit": True, "has_new_rows": False, "has_pairs": True}
    assert not result.success and not store.model_dir("r001").exists()


def test_label_free_round_trains_on_majority_pseudo_labels(tmp_path):
    config = _config(tmp_path, verifier="majority", majority_break_ties=True, max_unverifiable_share=1.0)
    store, result, checks = _round(config, tmp_path)
    prompts = store.read_table("prompts", "r001")
    assert set(prompts["reference"]) == {""}, "label-free pools carry no reference"
    verdicts = pl.read_parquet(store.table_path("verdicts", "r001"))
    assert set(verdicts["verifier"]) == {"majority@1"}
    assert verdicts.filter(pl.col("verdict") == "correct")["reason"].str.contains("pseudo-label").all()
    assert checks == {"unverifiable_share": True, "verdict_audit": True, "has_new_rows": True, "has_pairs": True}
    assert result.success
    rows = pl.read_parquet(store.table_path("training_set", "r001")).filter(pl.col("source_round") == "r001")
    assert rows.height > 0 and (rows["reward"] > 0).all()
    ev = pl.read_parquet(store.table_path("evaluation", "r001"))  # scored against the test references
    assert ev.height == 4 and set(ev["verdict"]) <= {"correct", "incorrect"}
