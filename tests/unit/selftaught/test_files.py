"""Writing files (selftaught/files.py): atomic Parquet writes, published folders and their hashes,
the umask, temp files of killed writes, a full disk."""

import os
import subprocess

import polars as pl
import pytest

from selftaught.files import dir_hash, publish_dir, write_parquet_atomic
from selftaught.store import Store


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_respect_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        path = tmp_path / "t" / "x.parquet"
        write_parquet_atomic(pl.DataFrame({"a": [1]}), path)
        Store(tmp_path / "s").write_file(b"{}", "provenance.json")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode
    assert (tmp_path / "s" / "provenance.json").stat().st_mode & 0o777 == mode


def test_temp_files_of_killed_writes_are_removed(tmp_path):
    from synth.backends import SamplingParams
    from synth.generate import GenerationJob, prepare

    out = tmp_path / "job"
    out.mkdir()
    (out / ".shard-00000.parquet.abc123.tmp").write_bytes(b"half a shard")
    job = GenerationJob(
        backend="hf",
        model_dir="m",
        params=SamplingParams(n=1),
        out_dir=str(out),
        round="r001",
        policy_id="base",
        policy_hash="h",
        shard_size=4,
    )
    prepare(job, pl.DataFrame({"prompt_id": ["a"], "prompt": ["x"]}))
    assert not list(out.glob("*.tmp"))
    table = tmp_path / "tables" / "t" / "r001.parquet"
    table.parent.mkdir(parents=True)
    (table.parent / ".r001.parquet.zz9.tmp").write_bytes(b"half a table")
    write_parquet_atomic(pl.DataFrame({"a": [1]}), table)
    assert not list(table.parent.glob("*.tmp")) and pl.read_parquet(table)["a"].to_list() == [1]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a 64 KiB tmpfs to fill")
def test_a_full_disk_is_named_in_words_and_leaves_no_temp_file(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        big = pl.DataFrame({"x": [float(i) * 1.1 for i in range(200_000)]})
        with pytest.raises(OSError, match=r"no space left on device writing .*/t/r001.parquet \(\d+\.\d MB free\)"):
            write_parquet_atomic(big, disk / "t" / "r001.parquet")
        with pytest.raises(OSError, match=r"no space left on device writing .*/provenance.json"):
            Store(disk).write_file(b"x" * 200_000, "provenance.json")
        assert not [p for p in disk.rglob("*") if p.is_file()]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_atomic_parquet_write_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "t" / "r001.parquet"
    write_parquet_atomic(pl.DataFrame({"a": [1]}), path)

    class Boom(pl.DataFrame):
        def write_parquet(self, *a, **k):
            raise OSError("disk full")

    with pytest.raises(OSError):
        write_parquet_atomic(Boom({"a": [2]}), path)
    assert pl.read_parquet(path)["a"].to_list() == [1]
    assert os.listdir(path.parent) == ["r001.parquet"]


def test_publish_dir_replaces_and_dir_hash_tracks_content(tmp_path):
    a, dst = tmp_path / "a", tmp_path / "out"
    a.mkdir()
    (a / "f").write_text("1")
    publish_dir(a, dst)
    h1 = dir_hash(dst)
    b = tmp_path / "b"
    b.mkdir()
    (b / "f").write_text("2")
    publish_dir(b, dst)
    assert (dst / "f").read_text() == "2" and dir_hash(dst) != h1 and not a.exists() and not b.exists()
