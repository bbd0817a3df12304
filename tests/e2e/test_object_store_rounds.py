"""Rounds on an s3:// storage root (moto's server on 127.0.0.1): a round continues from another
machine's cache."""

import pytest

from selftaught.store import Store
from tests.helpers import S3_BUCKET as BUCKET
from tests.helpers import copy_config, fresh_dagster_home, make_tiny_config, run_rounds
from train.artifact import read_provenance


def _store(s3, prefix, cache):
    return Store(f"s3://{BUCKET}/{prefix}", cache=cache, options={"endpoint_url": s3})


@pytest.mark.slow
def test_rounds_on_s3_continue_from_another_machines_cache(s3, tmp_path):
    """r001 runs with one local cache, r002 with an empty one (another machine): everything
    r002 needs (the base model, r001's policy, rows and tables) comes from the bucket."""
    import dagster as dg

    from pipelines.build import build_definitions

    root = f"s3://{BUCKET}/experiment"
    first = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "first.yaml",
        storage_root=root,
        storage_cache=str(tmp_path / "cache-1"),
        storage_options={"endpoint_url": s3},
        max_rounds=2,
    )
    run_rounds(first, tmp_path, rounds=1)
    second = copy_config(first, tmp_path / "second.yaml", storage_cache=str(tmp_path / "cache-2"))
    with fresh_dagster_home(tmp_path), dg.DagsterInstance.get() as instance:
        defs = build_definitions(second)
        instance.add_dynamic_partitions("rounds", ["r002"])
        result = defs.resolve_job_def("round").execute_in_process(
            instance=instance, partition_key="r002", raise_on_error=False
        )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        meta = {
            m.asset_key.path[-1]: {k: v.value for k, v in m.metadata.items()}
            for m in result.asset_materializations_for_node("policy")
            + result.asset_materializations_for_node("samples")
        }
    store = defs.resources["experiment"].store
    keys = store.remote.fs.find(f"{BUCKET}/experiment")
    for rel in (
        "tables/samples/r001.parquet",
        "tables/training_set/r002.parquet",
        "models/base/COMPLETE.json",
        "models/r002/COMPLETE.json",
        "tables/evaluation/base.parquet",
        "tables/evaluation/r002.parquet",
    ):
        assert f"{BUCKET}/experiment/{rel}" in keys, rel
    assert meta["policy"]["artifact"] == f"{root}/models/r002"
    assert meta["samples"]["path"] == f"{root}/tables/samples/r002.parquet"
    # r002's policy continued from the r001 policy that the first cache trained and the bucket carried
    parent = read_provenance(store.model_dir("r002"))["parent"]
    assert parent["policy_id"] == "r001"
    assert parent["weights_hash"] == read_provenance(store.model_dir("r001"))["weights_hash"]
    # lineage from a third, empty cache reads provenance without downloading any weights
    from pipelines.lineage import round_chain

    third = _store(s3, "experiment", tmp_path / "cache-3")
    chain = "\n".join(round_chain(third, "r002"))
    assert "-> policy r002: weights" in chain and f"[{root}/models/r002]" in chain
    assert not (tmp_path / "cache-3" / "models").exists()
