"""Two real rounds of the tiny config through Dagster, in-process, on disk."""

import json

import dagster as dg
import polars as pl
import pytest

from pipelines.build import build_definitions
from pipelines.keys import asset_key
from selftaught import schemas
from tests.helpers import copy_config, fresh_dagster_home, make_tiny_config

pytestmark = pytest.mark.slow


def _run(defs, instance, key=None, select=None):
    job = defs.resolve_job_def("round" if key else "setup")
    kwargs = {"partition_key": key} if key else {}
    if select:
        kwargs["asset_selection"] = [asset_key("tiny", a) for a in select]
    return job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)


def _meta(instance, asset, key):
    rec = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key("tiny", asset), asset_partitions=[key] if key else None), limit=1
    ).records[0]
    return rec, rec.asset_materialization.metadata


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rounds")
    with fresh_dagster_home(folder):
        defs = build_definitions(make_tiny_config(folder))
        with dg.DagsterInstance.get() as instance:
            assert _run(defs, instance).success
            instance.add_dynamic_partitions("rounds", ["r001", "r002"])
            results = {k: _run(defs, instance, k) for k in ("r001", "r002")}
            yield defs, instance, defs.resources["experiment"].store, results


def test_two_rounds_write_valid_tables_with_lineage(two_rounds):
    defs, instance, store, results = two_rounds
    assert all(r.success for r in results.values()), "rounds should succeed"
    for key in ("r001", "r002"):
        prompts = store.read_table("prompts", key)
        samples = schemas.validate(pl.read_parquet(store.table_path("samples", key)), "samples")
        verdicts = schemas.validate(pl.read_parquet(store.table_path("verdicts", key)), "verdicts")
        assert prompts.height == 20 and samples.height == 20 * 4 == verdicts.height
        assert set(samples["round"]) == {key}
        ev = schemas.validate(pl.read_parquet(store.table_path("evaluation", key)), "eval_results")
        assert ev.height == 16 and set(ev["policy_id"]) == {key}
    r1 = pl.read_parquet(store.table_path("samples", "r001"))
    r2 = pl.read_parquet(store.table_path("samples", "r002"))
    base_hash = json.loads((store.model_dir("base") / "provenance.json").read_text())["weights_hash"]
    r1_prov = json.loads((store.model_dir("r001") / "provenance.json").read_text())
    assert set(r1["policy_id"]) == {"base"} and set(r1["policy_hash"]) == {base_hash}
    assert set(r2["policy_id"]) == {"r001"} and set(r2["policy_hash"]) == {r1_prov["weights_hash"]}
    assert r1_prov["parent"]["policy_id"] == "base" and r1_prov["data_hash"]


def test_training_rows_trace_back_to_samples_and_accumulate(two_rounds):
    _, _, store, _ = two_rounds
    t1 = schemas.validate(pl.read_parquet(store.table_path("training_set", "r001")), "sft_rows")
    t2 = schemas.validate(pl.read_parquet(store.table_path("training_set", "r002")), "sft_rows")
    assert set(t1["row_id"]) <= set(t2["row_id"])
    assert t1.filter(pl.col("source_round") == "warm_start").height == 40
    assert t1.filter(pl.col("source_round") == "r001").height > 0
    for key, t in (("r001", t1), ("r002", t2)):
        mine = t.filter(pl.col("source_round") == key)
        samples = pl.read_parquet(store.table_path("samples", key))
        joined = mine.join(samples, on=["prompt_id", "sample_idx"], how="left")
        assert joined["completion_right"].to_list() == mine["completion"].to_list()
        verdicts = pl.read_parquet(store.table_path("verdicts", key))
        assert set(mine.join(verdicts, on=["prompt_id", "sample_idx"])["verdict"]) <= {"correct"}


def test_metadata_links_each_round_to_its_parent_policy_run(two_rounds):
    _, instance, _, results = two_rounds
    policy_r1, _ = _meta(instance, "policy", "r001")
    _, samples_r2 = _meta(instance, "samples", "r002")
    assert samples_r2["parent_policy"].value == "r001"
    assert samples_r2["parent_run"].value == policy_r1.run_id == results["r001"].run_id
    _, samples_r1 = _meta(instance, "samples", "r001")
    assert samples_r1["parent_policy"].value == "base"
    assert samples_r1["parent_asset"].value == asset_key("tiny", "base_model")
    assert samples_r2["parent_asset"].value == asset_key("tiny", "policy")
    _, ev = _meta(instance, "evaluation", "r002")
    assert 0.0 <= ev["frontier_accuracy"].value <= 1.0 and "frontier_delta" in ev
    _, verdicts = _meta(instance, "verdicts", "r001")
    assert verdicts["samples"].value == 80.0


def test_parent_guard_rejects_a_round_whose_parent_is_missing(two_rounds):
    defs, instance, store, _ = two_rounds
    instance.add_dynamic_partitions("rounds", ["r004"])
    result = _run(defs, instance, "r004")
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures and "policy of round r003" in failures[0].step_failure_data.error.message
    assert not store.table_path("samples", "r004").exists()


def test_blocking_check_stops_a_round_that_kept_nothing(tiny_config, dagster_home, tmp_path):
    # An untrained model solves nothing: has_new_rows fails and policy must not run.
    cfg = copy_config(tiny_config, tmp_path / "untrained.yaml", model__warm_start=None)
    defs = build_definitions(cfg)
    instance = dg.DagsterInstance.get()
    assert _run(defs, instance).success
    instance.add_dynamic_partitions("rounds", ["r001"])
    result = _run(defs, instance, "r001")
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert any(c.check_name == "has_new_rows" and not c.passed for c in checks)
    store = defs.resources["experiment"].store
    assert not store.model_dir("r001").exists()
    assert not result.success
