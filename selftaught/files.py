"""Files on a local disk, written so that a crash never leaves a half file: atomic writes
(temp file + rename, readable as the umask allows), directory publishing, content hashes,
and reading a Parquet table with an error that names it. Below selftaught.store and
selftaught.objectstore, which both use it."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import polars as pl


def umask() -> int:
    """The process umask, read without changing it (Linux), else by setting it back at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_for(path: Path) -> str:
    """A fresh temp file beside `path`, readable as the umask allows (mkstemp makes it 0600,
    which kept teammates out of a shared run); temp files of `path` that a killed writer left
    are removed first (one writer per experiment: selftaught.lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~umask())
    os.close(fd)
    return tmp


class TableError(RuntimeError):
    """A table file exists but cannot be read (truncated, overwritten, not Parquet)."""


def table_problem(path: Path) -> str | None:
    """Why the Parquet file at `path` is not a whole table (missing, or no readable
    footer), or None. Reads only the footer: cheap enough to check every finished stage."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return "missing"
    try:
        pq.read_metadata(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a cut or foreign file
        return f"unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


def read_parquet(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """pl.read_parquet, with an error that names the file when it is damaged."""
    try:
        return pl.read_parquet(path, columns=columns)
    except FileNotFoundError:
        raise
    except Exception as exc:  # polars' ComputeError / OSError say "position ..." and name no file
        raise TableError(
            f"table {path} is damaged ({table_problem(path) or str(exc).splitlines()[0]}); "
            "`selftaught run` rematerializes it"
        ) from None


def _write_failed(path: Path, exc: BaseException) -> OSError:
    """One line naming the file, and a full disk in words (polars says "parquet: File out of
    specification: underlying IO error ..."; a plain write names no file)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in text:
        try:
            free = f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB free"
        except OSError:
            free = "free space unknown"
        return OSError(
            errno.ENOSPC,
            f"no space left on device writing {path} ({free}); free some space and run again: finished stages are kept",
        )
    return OSError(getattr(exc, "errno", None) or errno.EIO, f"cannot write {path}: {text}")


def _write_atomic(path: Path, write) -> None:
    """`write(tmp)` into a temp file beside `path`, then rename it over `path`; the temp
    file never outlives a failure, and an I/O failure names the file (_write_failed)."""
    tmp = _temp_for(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _write_failed(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> None:
    _write_atomic(path, df.write_parquet)


def write_text_atomic(text: str, path: Path) -> None:
    write_bytes_atomic(text.encode("utf-8"), path)


def write_bytes_atomic(data: bytes, path: Path) -> None:
    _write_atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def normalize_modes(root: Path) -> None:
    """Modes as the umask allows, like any file the user writes: libraries write some files
    through mkstemp (transformers' model.safetensors came out 0600, the rest 0644)."""
    mask = umask()
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                executable = os.stat(path).st_mode & 0o100
                os.chmod(path, (0o777 if executable else 0o666) & ~mask)


def publish_dir(src: Path, dst: Path) -> None:
    """Move a finished directory to its final name, replacing an older one; its files get
    the modes the umask gives (normalize_modes)."""
    normalize_modes(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        old = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.old")
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
