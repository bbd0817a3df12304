"""What this machine's matmuls do well: whether bfloat16 pays here. Decided once per process,
from the GPU's capability or the CPU's instruction set, and recorded beside what it decided
(the samples' engine options, the policy's provenance).

bfloat16 on a CPU is fast only with bfloat16 matmul instructions (AMX, AVX-512 BF16): on a
Sapphire Rapids Xeon, bf16 training ran 1.67x fp32; on an AVX2-only EPYC a bf16 matmul ran
58x slower than fp32 (1.2 vs 69 GFLOP/s; docs/results.md).
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of bfloat16 matmul instructions


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is missing."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return set(line.split(":", 1)[1].split()) if ":" in line else set()


@functools.cache
def bf16_support() -> tuple[bool, str]:
    """(whether bfloat16 matmuls are fast here, why), for the device the pipeline uses."""
    import torch

    if torch.cuda.is_available():
        ok = torch.cuda.is_bf16_supported()
        return ok, f"GPU {torch.cuda.get_device_name(0)} {'supports' if ok else 'lacks'} bfloat16"
    have = [f for f in BF16_CPU_FLAGS if f in cpu_flags()]
    if have:
        return True, f"CPU has {' and '.join(have)}"
    return False, f"CPU has no bfloat16 matmul instructions ({', '.join(BF16_CPU_FLAGS)})"


def resolve_dtype(name: str) -> str:
    """A config's dtype with `auto` decided for this machine: bfloat16 where it is fast, else float32."""
    if name != "auto":
        return name
    return "bfloat16" if bf16_support()[0] else "float32"


# The matmul probe: a shape of a small transformer's MLP (tokens x d_model x d_ff), repeated.
PROBE_SHAPE = (256, 1024, 2816)
PROBE_SECONDS = 0.5


def _device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((x.split(":", 1)[1].strip() for x in text.splitlines() if x.startswith("model name")), "cpu")
    return f"cpu:{model}"


def ceiling_cache() -> Path:
    """Where measured ceilings are kept: $SELFTAUGHT_CACHE, else ~/.cache/selftaught."""
    root = (
        os.environ.get("SELFTAUGHT_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "selftaught"
    )
    return Path(root) / "matmul_ceiling.json"


def matmul_ceiling(dtype: str = "float32") -> float:
    """FLOP/s of this machine's best dense matmul in `dtype` (float32, bfloat16), with the
    threads torch uses here: the ceiling the ledger's utilization is a share of. Measured once
    per machine, torch version, thread count and dtype (a probe of ~0.5 s), then read from
    ceiling_cache()."""
    import torch

    key = f"{_device_name()}|torch {torch.__version__}|threads {torch.get_num_threads()}|{dtype}"
    path = ceiling_cache()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = _probe(getattr(torch, dtype))
        try:
            from selftaught.files import write_text_atomic

            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(json.dumps(known, indent=1, sort_keys=True), path)
        except OSError:  # a read-only home: measure again next time
            pass
    return float(known[key])


def _probe(dtype) -> float:
    import torch

    m, k, n = PROBE_SHAPE
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = torch.randn(m, k, dtype=dtype, device=device), torch.randn(k, n, dtype=dtype, device=device)
    best, spent = 0.0, 0.0
    with torch.inference_mode():
        torch.matmul(a, b)  # warm-up: kernels picked, caches filled
        while spent < PROBE_SECONDS:
            start = time.perf_counter()
            torch.matmul(a, b)
            if device == "cuda":
                torch.cuda.synchronize()
            took = time.perf_counter() - start
            spent += took
            best = max(best, 2 * m * k * n / took)
    return best
