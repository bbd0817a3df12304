"""Metadata floats as the UI shows them: rounded to 7 significant digits, nothing else touched."""

import math

import dagster as dg

from assets.display import for_display


def test_floats_are_rounded_for_display_and_nothing_else_changes():
    shown = for_display(
        {
            "frontier_delta": 0.04999999999999993,
            "accuracy_d6": 0.6166666666666667,
            "flop_per_s": 123456789012.3,
            "wrapped": dg.MetadataValue.float(0.30000000000000004),
            "steps": 40,
            "flag": True,
            "nan": float("nan"),
            "text": "0.04999999999999993",
        }
    )
    assert shown["frontier_delta"] == 0.05 and shown["accuracy_d6"] == 0.6166667
    assert shown["flop_per_s"] == 123456800000.0
    assert shown["wrapped"] == dg.MetadataValue.float(0.3)
    assert shown["steps"] == 40 and type(shown["steps"]) is int and shown["flag"] is True
    assert math.isnan(shown["nan"]) and shown["text"] == "0.04999999999999993"
