"""An object-store storage root (s3://) against a real S3-compatible server: moto's server mode,
started on 127.0.0.1 by these tests. Crashed uploads are real crashes (a killed process), and
the reader must not take what they left for complete. (Rounds on s3://:
tests/e2e/test_object_store_rounds.py.)"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import polars as pl
import pytest

from selftaught.config import ConfigError, parse_config
from selftaught.objectstore import COMPLETE
from selftaught.store import Store, is_complete
from tests.helpers import ROOT
from tests.helpers import S3_BUCKET as BUCKET
from train.artifact import read_provenance


def _store(s3, prefix, cache):
    return Store(f"s3://{BUCKET}/{prefix}", cache=cache, options={"endpoint_url": s3})


def _crash(script: str, s3, tmp_path, marker: str):
    """Run `script` in a Python process, kill it with SIGKILL once it prints `marker`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "S3": s3, "CACHE": str(tmp_path / "writer-cache")},
        cwd=ROOT,
    )
    for line in proc.stdout:
        if marker in line:
            proc.kill()
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the writer exited by itself ({proc.returncode}) before crashing"


def test_tables_go_to_the_bucket_and_another_cache_reads_them(s3, tmp_path):
    a, b = _store(s3, "tables", tmp_path / "a"), _store(s3, "tables", tmp_path / "b")
    a.write_table(pl.DataFrame({"x": [1, 2, 3]}), "scores", "r001")
    assert a.remote.fs.exists(f"{BUCKET}/tables/tables/scores/r001.parquet")
    assert b.read_table("scores", "r001")["x"].to_list() == [1, 2, 3]
    assert b.partitions("scores") == ["r001"]
    # rewritten elsewhere: the stale cached copy is replaced, not served
    a.write_table(pl.DataFrame({"x": [7]}), "scores", "r001")
    assert b.read_table("scores", "r001")["x"].to_list() == [7]
    # gone from the store: gone from the cache
    a.remote.fs.rm_file(f"{BUCKET}/tables/tables/scores/r001.parquet")
    assert not b.table_path("scores", "r001").exists()
    assert b.partitions("scores") == []


def test_a_table_upload_killed_midway_leaves_no_table(s3, tmp_path):
    # 12 MB of incompressible data: s3fs uploads it in 5 MB parts (multipart); the writer
    # is killed after the first part is on the server, before the upload completes.
    _crash(
        """
        import os
        import s3fs
        fs = s3fs.S3FileSystem(endpoint_url=os.environ["S3"])
        f = fs.open("selftaught-test/crash/tables/big/r001.parquet", "wb", block_size=5 * 2**20)
        f.write(os.urandom(12 * 2**20))
        f.flush()
        print("first part uploaded", flush=True)
        import time; time.sleep(60)
    """,
        s3,
        tmp_path,
        "first part uploaded",
    )
    store = _store(s3, "crash", tmp_path / "reader")
    uploads = store.remote.fs.call_s3("list_multipart_uploads", Bucket=BUCKET).get("Uploads", [])
    assert any(u["Key"] == "crash/tables/big/r001.parquet" for u in uploads)  # it really was mid-upload
    assert not store.table_path("big", "r001").exists()
    assert store.partitions("big") == []
    with pytest.raises(FileNotFoundError, match="no big table for r001 at s3://"):
        store.read_table("big", "r001")


def _artifact(folder, text):
    (folder / "model").mkdir(parents=True)
    for i in range(25):
        (folder / "model" / f"shard-{i:02d}.bin").write_text(f"{text} {i}")
    (folder / "provenance.json").write_text(json.dumps({"policy_id": text}))
    return folder


def test_a_model_upload_killed_midway_is_not_read_as_complete(s3, tmp_path):
    writer = _store(s3, "models", tmp_path / "writer")
    writer.publish_model(_artifact(tmp_path / "first", "first"), "r001")
    # A second publish dies after 20 of its 27 files: its attempt has no COMPLETE.json.
    _crash(
        """
        import os, signal
        from pathlib import Path
        from selftaught.store import Store
        from tests.unit.selftaught.test_object_store import _artifact
        store = Store("s3://selftaught-test/models", cache=os.environ["CACHE"], options={"endpoint_url": os.environ["S3"]})
        def log(line):
            print(line, flush=True)
            if line.startswith("uploaded 20/"):
                os.kill(os.getpid(), signal.SIGKILL)
        store.publish_model(_artifact(Path(os.environ["CACHE"]) / "second", "second"), "r001", log)
    """,
        s3,
        tmp_path,
        "uploaded 20/",
    )
    attempts = [n for n in writer.remote.list("models/r001") if n != COMPLETE]
    assert len(attempts) == 2  # the complete one and the crashed one
    reader = _store(s3, "models", tmp_path / "reader")
    artifact = reader.model_dir("r001")
    assert is_complete(artifact) and read_provenance(artifact)["policy_id"] == "first"
    assert len(list((artifact / "model").iterdir())) == 25
    # the next publish wins, and removes both older attempts
    writer.publish_model(_artifact(tmp_path / "third", "third"), "r001")
    assert read_provenance(reader.model_dir("r001"))["policy_id"] == "third"
    assert [n for n in writer.remote.list("models/r001") if n != COMPLETE] == [
        reader.remote.read_marker("models/r001")["attempt"]
    ]
    # an artifact with no COMPLETE.json at all is not there
    assert not reader.model_dir("r002").exists()


def test_a_bad_storage_url_is_a_config_error():
    with pytest.raises(ConfigError, match="storage_root 'nosuch://x': unknown protocol 'nosuch'"):
        parse_config({"storage_root": "nosuch://x"}, "test")


def test_an_unreachable_bucket_is_reported_before_the_run(s3, tmp_path):
    store = Store("s3://no-such-bucket/x", cache=tmp_path / "c", options={"endpoint_url": s3})
    with pytest.raises(PermissionError, match="storage root s3://no-such-bucket/x is not writable"):
        store.check_writable()
