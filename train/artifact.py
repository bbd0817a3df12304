"""The model artifact: a directory with a loadable model and its provenance.

<artifact>/model/            HF model + tokenizer (merged weights for LoRA)
<artifact>/adapter/          the LoRA adapter (LoRA rounds only)
<artifact>/provenance.json   parent, base, config hash, data hash, metrics
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from selftaught.files import dir_hash, write_text_atomic
from selftaught.store import PROVENANCE, model_path


def weights_hash(artifact: Path) -> str:
    return dir_hash(model_path(artifact), "*.safetensors")[:16]


def write_provenance(artifact: Path, **fields) -> dict:
    record = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
    record["weights_hash"] = weights_hash(artifact)
    if adapter_path(artifact).is_dir():
        record["adapter_hash"] = dir_hash(adapter_path(artifact), "*.safetensors")[:16]
    write_text_atomic(json.dumps(record, indent=2, sort_keys=True), Path(artifact) / PROVENANCE)
    return record


_verified: dict[tuple, str] = {}


def verified_weights_hash(artifact: Path) -> str:
    """The weights hash that provenance.json records, after checking that the files on disk
    still have it (once per process for the same files, sizes and mtimes): weights changed
    or corrupted after they were written must not be sampled from or trained on."""
    recorded = read_provenance(artifact)["weights_hash"]
    files = sorted(Path(model_path(artifact)).rglob("*.safetensors"))
    stamp = (
        str(Path(artifact).resolve()),
        recorded,
        tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files),
    )
    if stamp not in _verified:
        actual = weights_hash(artifact)
        if actual != recorded:
            raise ValueError(
                f"the weights in {model_path(artifact)} are not the ones their provenance records "
                f"(weights_hash {recorded} in {PROVENANCE}, {actual} on disk): they changed after "
                "they were written; rematerialize that model"
            )
        _verified[stamp] = actual
    return recorded


def read_provenance(artifact: Path) -> dict:
    path = Path(artifact) / PROVENANCE
    if not path.is_file():
        raise FileNotFoundError(f"{artifact} is not a complete model artifact (no {PROVENANCE})")
    return json.loads(path.read_text())


def copy_model(src: str | Path, dst: Path) -> None:
    """Load a model + tokenizer (local directory or hub id) and save it to `dst`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(src)
        tok = AutoTokenizer.from_pretrained(src)
    except (OSError, ValueError) as exc:  # transformers raises both for "not a model"
        raise ValueError(
            f"base model {str(src)!r} is not a loadable model directory or hub id: {str(exc).splitlines()[0]}"
        ) from None
    model.save_pretrained(dst)
    tok.save_pretrained(dst)


def verifier_dir(artifact: Path) -> Path:
    """V-STaR's verifier, trained next to the policy: its own `model/` inside the artifact."""
    return Path(artifact) / "verifier"


def adapter_path(artifact: Path) -> Path:
    return Path(artifact) / "adapter"


def serving_paths(artifact: Path, base_artifact: Path, backend: str) -> tuple[str, str | None]:
    """(model directory, LoRA adapter or None) for a generation backend.

    vLLM serves a LoRA policy as its adapter on the base model, which needs the
    adapter to have been trained on exactly that base (provenance says so);
    everything else loads the merged weights.
    """
    adapter = adapter_path(artifact)
    if backend == "vllm" and adapter.is_dir():
        on = read_provenance(artifact).get("adapter_base_hash")
        if on is not None and on == read_provenance(base_artifact).get("weights_hash"):
            return str(model_path(base_artifact)), str(adapter)
    return str(model_path(artifact)), None


def parameter_count(model_dir: str | Path) -> int:
    """Parameters of the model whose *.safetensors lie in `model_dir`, read from the files'
    headers (no weights loaded); a tied output layer is stored, and counted, once."""
    total = 0
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        for name, entry in header.items():
            if name != "__metadata__":
                count = 1
                for dim in entry["shape"]:
                    count *= dim
                total += count
    return total
