"""Round keys: r001, r002, ... (sortable, stable in file names and the UI), and the
experiment's asset-key prefix."""

from __future__ import annotations

import re

_KEY = re.compile(r"^r(\d{3,})$")


def round_key(index: int) -> str:
    if index < 1:
        raise ValueError(f"round index must be >= 1, got {index}")
    return f"r{index:03d}"


def is_round_key(key: str) -> bool:
    """False for stray partition keys (r01, test) someone added to the shared instance."""
    return bool(_KEY.match(key)) and int(key[1:]) >= 1


def round_index(key: str) -> int:
    m = _KEY.match(key)
    if not m:
        raise ValueError(f"not a round key: {key!r} (expected r001, r002, ...)")
    return int(m[1])


def parent_key(key: str) -> str | None:
    """The round whose policy generates this round's samples; None for round 1 (base model)."""
    i = round_index(key)
    return round_key(i - 1) if i > 1 else None


def control_key(key: str) -> str:
    """The name of round `key`'s control (evaluation.control): its model folder and policy id."""
    return f"control-{key}"


def next_round(existing: list[str]) -> str:
    done = [round_index(k) for k in existing if _KEY.match(k)]
    return round_key(max(done, default=0) + 1)


def key_prefix(experiment: str) -> str:
    """Asset keys are prefixed by the experiment, so experiments sharing a Dagster
    instance never see each other's materializations ('-' is not allowed in keys: names
    that differ only by - and _ share a prefix, which selftaught.lock.claim_key_prefix refuses)."""
    return experiment.replace("-", "_")
