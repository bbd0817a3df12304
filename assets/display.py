"""Metadata as the Dagster UI shows it: floats to SIGNIFICANT digits (0.05, not the
0.04999999999999993 a subtraction leaves). The tables on disk keep full precision."""

from __future__ import annotations

import math
from collections.abc import Mapping

import dagster as dg

SIGNIFICANT = 7  # rounding error at most 5e-7 relative: below what any number here can tell apart


def for_display(metadata: Mapping) -> dict:
    """`metadata` with every finite float (plain or a float MetadataValue) rounded to SIGNIFICANT digits."""
    return {key: _rounded(value) for key, value in metadata.items()}


def _rounded(value):
    if isinstance(value, dg.FloatMetadataValue):
        inner = value.value
        return dg.MetadataValue.float(_rounded(inner)) if isinstance(inner, float) else value
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.{SIGNIFICANT}g}")
    return value
