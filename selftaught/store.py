"""Where a run's files live, and how they are written (atomically).

Layout under the storage root:
    tables/<table>/<round>.parquet   one file per round (or all.parquet unpartitioned)
    models/base/                     the base model artifact
    models/<round>/                  each round's policy artifact
    work/<name>/                     in-progress training (checkpoints survive a crash)
A file or artifact directory appears under its final name only when complete.

The root is a local (or shared) path, or an object store URL (s3://, gs://). With
a URL every stage still works on local files, in a cache that mirrors the store
(selftaught.objectstore); `work/` stays local to the machine.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import polars as pl

from selftaught import schemas
from selftaught.files import publish_dir, read_parquet, write_bytes_atomic, write_parquet_atomic
from selftaught.objectstore import ObjectStore, default_cache, is_url

PROVENANCE = "provenance.json"


def model_path(artifact: Path) -> Path:
    """The loadable model inside an artifact directory (train.artifact describes the rest)."""
    return Path(artifact) / "model"


def is_complete(artifact: Path) -> bool:
    return (Path(artifact) / PROVENANCE).is_file() and model_path(artifact).is_dir()


class Store:
    def __init__(self, root: str | Path, cache: str | Path | None = None, options: dict | None = None):
        """`root`: a path or an object store URL; `cache`: the local mirror of a URL root
        (default ~/.cache/selftaught/...); `options`: fsspec options (e.g. endpoint_url)."""
        if is_url(root):
            self.remote: ObjectStore | None = ObjectStore(str(root), options)
            self.root = Path(cache).resolve() if cache else default_cache(self.remote.url)
        else:
            self.remote = None
            self.root = Path(root)

    @classmethod
    def for_config(cls, cfg, root: str | None = None) -> Store:
        """The store of an ExperimentConfig (`root` overrides its storage_root)."""
        return cls(resolve_root(root or cfg.storage_root), cache=cfg.storage_cache, options=cfg.storage_options)

    def location(self) -> str:
        """The root as users name it: the URL, or the local path."""
        return self.remote.url if self.remote else str(self.root)

    def table_path(self, table: str, partition: str | None = None) -> Path:
        """The table's local file (fetched from the object store first when the root is one);
        it does not exist when the store has no such table."""
        rel = f"tables/{table}/{partition or 'all'}.parquet"
        if self.remote:
            self.remote.pull_file(rel, self.root / rel)
        return self.root / rel

    def evaluation_path(self, policy_id: str) -> Path:
        """A policy's held-out evaluation ("base" or a round key): tables/evaluation/<id>.parquet.
        Experiments written by selftaught 0.3 kept the base model's at
        tables/eval_results/base.parquet; that file is still read."""
        path = self.table_path("evaluation", policy_id)
        if policy_id == "base" and not path.is_file():
            legacy = self.table_path("eval_results", "base")
            if legacy.is_file():
                return legacy
        return path

    def model_dir(self, name: str) -> Path:
        """The model artifact's local directory (fetched like `table_path`)."""
        rel = f"models/{name}"
        if self.remote:
            self.remote.pull_dir(rel, self.root / rel)
        return self.root / rel

    def provenance(self, name: str) -> dict | None:
        """models/<name>'s provenance.json, or None when there is no complete artifact; with
        an object store, without fetching the weights."""
        if not self.remote:
            path = self.root / "models" / name
            return json.loads((path / PROVENANCE).read_text()) if is_complete(path) else None
        marker = self.remote.read_marker(f"models/{name}")
        if marker is None or PROVENANCE not in marker["files"]:
            return None
        return json.loads(self.remote.fs.cat_file(self.remote.key(f"models/{name}/{marker['attempt']}/{PROVENANCE}")))

    def work_dir(self, name: str) -> Path:
        return self.root / "work" / name

    def partitions(self, table: str) -> list[str]:
        """Rounds (r001, ...) that have `table`, oldest first."""
        if self.remote:
            names = self.remote.list(f"tables/{table}")
        else:
            names = [p.name for p in (self.root / "tables" / table).glob("*.parquet")]
        return sorted(n.removesuffix(".parquet") for n in names if n.startswith("r") and n.endswith(".parquet"))

    def write_table(
        self, df: pl.DataFrame, table: str, partition: str | None = None, schema: str | None = None
    ) -> Path:
        """Validate against `schema` (default: the table's own, if declared) and write."""
        schema = schema or (table if table in schemas.TABLES else None)
        if schema:
            df = schemas.validate(df, schema)
        rel = f"tables/{table}/{partition or 'all'}.parquet"
        write_parquet_atomic(df, self.root / rel)
        if self.remote:
            self.remote.push_file(self.root / rel, rel)
        return self.root / rel

    def read_table(self, table: str, partition: str | None = None) -> pl.DataFrame:
        path = self.table_path(table, partition)
        if not path.is_file():
            raise FileNotFoundError(f"no {table} table for {partition or 'the experiment'} at {self.where(path)}")
        df = read_parquet(path)
        return schemas.validate(df, table) if table in schemas.TABLES else df

    def write_file(self, data: bytes, rel: str) -> Path:
        """A small file under the root (a plot, a status record)."""
        write_bytes_atomic(data, self.root / rel)
        if self.remote:
            self.remote.push_file(self.root / rel, rel)
        return self.root / rel

    def publish_model(self, work: Path, name: str, log=None) -> Path:
        """Move a finished artifact from `work` to models/<name> (and upload it)."""
        dst = self.root / "models" / name
        publish_dir(work, dst)
        if self.remote:
            self.remote.push_dir(dst, f"models/{name}", log)
        return dst

    def where(self, path: Path) -> str:
        """Where a local path under the root lives, as users name it."""
        if not self.remote:
            return str(path)
        return f"{self.remote.url}/{Path(path).relative_to(self.root).as_posix()}"

    def check_writable(self) -> None:
        ensure_writable(self.root)
        if self.remote:
            self.remote.check_writable()


def resolve_root(root: str | Path) -> str:
    """A URL as it is; a relative path against the current directory."""
    return str(root) if is_url(root) else str(Path(root).resolve())


def ensure_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise PermissionError(f"storage root {root} is not writable: {exc.strerror or exc}") from None
