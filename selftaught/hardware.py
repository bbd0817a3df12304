"""What this machine's matmuls do well: whether bfloat16 pays here. Decided once per process,
from the GPU's capability or the CPU's instruction set, and recorded beside what it decided
(the samples' engine options, the policy's provenance).

bfloat16 on a CPU is fast only with bfloat16 matmul instructions (AMX, AVX-512 BF16): on a
Sapphire Rapids Xeon, bf16 training ran 1.67x fp32; on an AVX2-only EPYC a bf16 matmul ran
58x slower than fp32 (1.2 vs 69 GFLOP/s; docs/results.md).
"""

from __future__ import annotations

import functools
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
