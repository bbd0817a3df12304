"""Where a run's files live, and how they are written (atomically).

Layout under the storage root:
    tables/<table>/<round>.parquet   one file per round (or all.parquet unpartitioned)
    models/base/                     the base model artifact
    models/<round>/                  each round's policy artifact
    work/<name>/                     in-progress training (checkpoints survive a crash)
A file or artifact directory appears under its final name only when complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl

from selftaught import schemas


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def table_path(self, table: str, partition: str | None = None) -> Path:
        return self.root / "tables" / table / f"{partition or 'all'}.parquet"

    def model_dir(self, name: str) -> Path:
        return self.root / "models" / name

    def work_dir(self, name: str) -> Path:
        return self.root / "work" / name

    def write_table(self, df: pl.DataFrame, table: str, partition: str | None = None) -> Path:
        if table in schemas.TABLES:
            df = schemas.validate(df, table)
        path = self.table_path(table, partition)
        write_parquet_atomic(df, path)
        return path

    def read_table(self, table: str, partition: str | None = None) -> pl.DataFrame:
        path = self.table_path(table, partition)
        if not path.is_file():
            raise FileNotFoundError(f"no {table} table for {partition or 'the experiment'} at {path}")
        df = pl.read_parquet(path)
        return schemas.validate(df, table) if table in schemas.TABLES else df


def ensure_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise PermissionError(f"storage root {root} is not writable: {exc.strerror or exc}") from None


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        df.write_parquet(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(text: str, path: Path) -> None:
    write_bytes_atomic(text.encode("utf-8"), path)


def write_bytes_atomic(data: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish_dir(src: Path, dst: Path) -> None:
    """Move a finished directory to its final name, replacing an older one."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dir_hash(path: Path, pattern: str = "*") -> str:
    """Hash of the files under `path` matching `pattern` (names and contents)."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob(pattern) if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(file_hash(f).encode())
    return h.hexdigest()
