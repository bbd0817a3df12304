"""An object store (s3://, gs://, ... through fsspec) behind a local cache.

Every stage works on local files (training, vLLM and the sandboxes need them);
the object store is the truth and the cache mirrors it:

- A file (a Parquet table, a plot) is uploaded whole, to its final key. On S3,
  GCS and Azure an object appears only when its upload completes (multipart
  included), so a crashed upload leaves no object. Elsewhere it goes to a
  temporary key and is renamed.
- A directory (a model artifact) is uploaded under a fresh attempt key,
  `<dir>/<attempt>/...`, and becomes visible only when `<dir>/COMPLETE.json`,
  naming the attempt and its files, is written last. A crashed upload leaves an
  attempt nobody points to; the next successful one deletes it.
- A cached copy remembers which object version (ETag) or attempt it holds, in a
  hidden sidecar next to it; a different version in the store replaces it, and a
  copy the store no longer has is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from selftaught.files import publish_dir

COMPLETE = "COMPLETE.json"
# stores where a single PUT is atomic: the object appears only once the upload completes
ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}


def is_url(root: str | Path) -> bool:
    return "://" in str(root) and not str(root).startswith("file://")


def check_protocol(url: str) -> None:
    """A clear error for a URL whose fsspec filesystem is unknown or not installed."""
    import fsspec

    protocol = url.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise ValueError(f"storage_root {url!r}: unknown protocol {protocol!r}") from None
    except ImportError as exc:
        hint = {
            "s3": "pip install 'selftaught[s3]' (s3fs)",
            "gs": "pip install gcsfs",
            "gcs": "pip install gcsfs",
            "az": "pip install adlfs",
            "abfs": "pip install adlfs",
        }
        raise ValueError(f"storage_root {url!r} needs {hint.get(protocol, str(exc))}") from None


def cache_root() -> Path:
    """This machine's cache for selftaught: object-store mirrors, converted GGUF models."""
    return Path(os.environ.get("SELFTAUGHT_CACHE") or Path.home() / ".cache" / "selftaught")


def default_cache(url: str) -> Path:
    return cache_root() / url.replace("://", "/").strip("/")


class ObjectStore:
    def __init__(self, url: str, options: dict | None = None):
        self.url = url.rstrip("/")
        self.protocol = self.url.split("://", 1)[0]
        self.options = dict(options or {})
        self._fs = None

    @property
    def fs(self):
        if self._fs is None:  # no connection until the first call: building Definitions stays offline
            import fsspec

            self._fs, self._base = fsspec.core.url_to_fs(self.url, **self.options)
        return self._fs

    def key(self, rel: str) -> str:
        _ = self.fs  # connects, which sets self._base
        return f"{self._base}/{rel}" if rel else self._base

    def info(self, rel: str) -> dict | None:
        try:
            return self.fs.info(self.key(rel))
        except FileNotFoundError:
            return None

    def list(self, rel: str) -> list[str]:
        """Names directly under `rel` (empty when there is none)."""
        try:
            return sorted(Path(p.rstrip("/")).name for p in self.fs.ls(self.key(rel), detail=False, refresh=True))
        except FileNotFoundError:
            return []

    def check_writable(self) -> None:
        probe = f".write-test-{uuid.uuid4().hex[:8]}"
        try:
            self.fs.pipe_file(self.key(probe), b"ok")
            self.fs.rm_file(self.key(probe))
        except Exception as exc:  # botocore/gcsfs raise their own error types
            raise PermissionError(f"storage root {self.url} is not writable: {type(exc).__name__}: {exc}") from None

    # files

    def push_file(self, local: Path, rel: str) -> None:
        if self.protocol in ATOMIC_PUT:
            self.fs.put_file(str(local), self.key(rel))
        else:
            tmp = f"{rel}.tmp-{uuid.uuid4().hex[:8]}"
            self.fs.put_file(str(local), self.key(tmp))
            self.fs.mv(self.key(tmp), self.key(rel))
        self.fs.invalidate_cache(self.key(rel))
        _remember(local, _version(self.info(rel)))

    def pull_file(self, rel: str, local: Path) -> None:
        """Make `local` the store's current `rel`, or remove it when the store has none."""
        info = self.info(rel)
        if info is None:
            _forget(local)
            return
        version = _version(info)
        if local.is_file() and _remembered(local) == version:
            return
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            self.fs.get_file(self.key(rel), str(tmp))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        _remember(local, version)

    # directories

    def push_dir(self, local: Path, rel: str, log=None) -> str:
        """Upload `local` as a new attempt of `rel`; returns the attempt id."""
        attempt = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        files = {str(p.relative_to(local)): p.stat().st_size for p in sorted(local.rglob("*")) if p.is_file()}
        for i, name in enumerate(files, 1):
            self.fs.put_file(str(local / name), self.key(f"{rel}/{attempt}/{name}"))
            if log and (i % 20 == 0 or i == len(files)):
                log(f"uploaded {i}/{len(files)} files of {rel} to {self.url}")
        self.fs.pipe_file(self.key(f"{rel}/{COMPLETE}"), json.dumps({"attempt": attempt, "files": files}).encode())
        self.fs.invalidate_cache(self.key(rel))
        _remember(local, attempt)
        for old in self.list(rel):
            if old not in (attempt, COMPLETE):
                self.fs.rm(self.key(f"{rel}/{old}"), recursive=True)
        return attempt

    def pull_dir(self, rel: str, local: Path) -> None:
        """Make `local` the store's complete `rel`, or remove it when the store has none."""
        marker = self.read_marker(rel)
        if marker is None:
            _forget(local)
            return
        attempt = marker["attempt"]
        if local.is_dir() and _remembered(local) == attempt:
            return
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            for name, size in marker["files"].items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(self.key(f"{rel}/{attempt}/{name}"), str(tmp / name))
                if (tmp / name).stat().st_size != size:
                    raise OSError(
                        f"{self.url}/{rel}/{attempt}/{name}: {(tmp / name).stat().st_size} bytes, "
                        f"COMPLETE.json says {size}"
                    )
            publish_dir(tmp, local)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _remember(local, attempt)

    def read_marker(self, rel: str) -> dict | None:
        try:
            return json.loads(self.fs.cat_file(self.key(f"{rel}/{COMPLETE}")))
        except FileNotFoundError:
            return None


def _version(info: dict | None) -> str:
    info = info or {}
    for field in ("ETag", "etag", "md5Hash", "generation", "version_id"):
        if info.get(field):
            return str(info[field])
    return f"{info.get('size')}:{info.get('LastModified') or info.get('mtime') or info.get('updated')}"


def _sidecar(local: Path) -> Path:
    return local.with_name(f".{local.name}.version")


def _remember(local: Path, version: str) -> None:
    tmp = local.with_name(f".{local.name}.version.{uuid.uuid4().hex[:8]}")
    tmp.write_text(version)
    os.replace(tmp, _sidecar(local))


def _remembered(local: Path) -> str | None:
    side = _sidecar(local)
    return side.read_text() if side.is_file() else None


def _forget(local: Path) -> None:
    if local.is_dir():
        shutil.rmtree(local, ignore_errors=True)
    else:
        local.unlink(missing_ok=True)
    _sidecar(local).unlink(missing_ok=True)
