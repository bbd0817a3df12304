"""The machine's precision decision (selftaught/hardware.py): bfloat16 only where its matmuls
are fast, decided from the CPU's flags or the GPU, and what training records of it."""

from __future__ import annotations

import pytest

from selftaught import hardware
from train.common import device_args, training_precision

XEON = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    (tmp_path / "xeon").write_text(XEON)
    (tmp_path / "epyc").write_text(EPYC)
    assert {"amx_bf16", "avx512_bf16"} <= hardware.cpu_flags(tmp_path / "xeon")
    assert not set(hardware.BF16_CPU_FLAGS) & hardware.cpu_flags(tmp_path / "epyc")
    assert hardware.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize("cpuinfo, fast", [(XEON, True), (EPYC, False)])
def test_auto_is_bfloat16_exactly_where_the_cpu_has_bfloat16_matmuls(cpuinfo, fast, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    real = hardware.cpu_flags
    monkeypatch.setattr(hardware, "cpu_flags", lambda path=tmp_path / "cpuinfo": real(path))
    hardware.bf16_support.cache_clear()
    try:
        assert hardware.resolve_dtype("auto") == ("bfloat16" if fast else "float32")
        assert hardware.resolve_dtype("float32") == "float32" and hardware.resolve_dtype("bfloat16") == "bfloat16"
        assert device_args(None)["bf16"] is fast and device_args(False)["bf16"] is False
        record = training_precision(None)
        assert record["training_precision"] == ("bf16 mixed" if fast else "fp32")
        assert record["training_precision_reason"].startswith("CPU has amx_bf16" if fast else "CPU has no bfloat16")
        assert training_precision(True) == {
            "training_precision": "bf16 mixed",
            "training_precision_reason": "training.bf16: true",
        }
    finally:
        hardware.bf16_support.cache_clear()
