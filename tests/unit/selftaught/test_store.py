"""The store (selftaught/store.py): validated on write and read, every policy's evaluation in one
table, unwritable roots."""

import polars as pl
import pytest

from selftaught import schemas
from selftaught.files import write_parquet_atomic
from selftaught.store import Store, ensure_writable


def test_store_validates_on_write_and_read(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(schemas.SchemaError):
        store.write_table(pl.DataFrame({"x": [1]}), "samples", "r001")
    assert not store.table_path("samples", "r001").exists()
    with pytest.raises(FileNotFoundError, match="no samples table for r001"):
        store.read_table("samples", "r001")


def test_every_policy_evaluation_is_one_table_and_a_03_base_evaluation_is_still_read(tmp_path):
    store = Store(tmp_path)
    rows = pl.DataFrame(
        {
            "prompt_id": ["p"],
            "difficulty": [1],
            "prompt": ["q"],
            "reference": ["1"],
            "completion": ["1"],
            "extracted_answer": ["1"],
            "verdict": ["correct"],
            "policy_id": ["base"],
        }
    )
    assert store.evaluation_path("base") == store.table_path("evaluation", "base")
    legacy = tmp_path / "tables" / "eval_results" / "base.parquet"
    write_parquet_atomic(rows, legacy)  # an experiment that selftaught 0.3 wrote
    assert store.evaluation_path("base") == legacy
    assert store.evaluation_path("r001") == store.table_path("evaluation", "r001")
    write_parquet_atomic(rows, store.table_path("evaluation", "base"))
    assert store.evaluation_path("base") == store.table_path("evaluation", "base")


def test_unwritable_root_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a root under a regular file fails even for root
    with pytest.raises(PermissionError, match="not writable"):
        ensure_writable(blocker / "store")


def test_storage_root_that_is_not_writable(tmp_path):
    from selftaught.store import ensure_writable

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match=r"storage root .*file/runs is not writable"):
        ensure_writable(blocker / "runs")
