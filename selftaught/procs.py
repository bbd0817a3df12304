"""The environment of the Python subprocesses the pipeline starts (generation, training)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)


def python_env(extra: dict | None = None) -> dict:
    """os.environ (plus `extra`) with this checkout first on PYTHONPATH, so `python -m
    synth.generate` / `-m train.worker` import the same code, and unbuffered output, so
    the parent sees each progress line as it is printed."""
    env = {**os.environ, **(extra or {}), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return env
