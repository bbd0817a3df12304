"""The compute ledger (filters/ledger.py): a round's row adds its stages up."""

from __future__ import annotations

import pytest

from filters.ledger import round_ledger


def test_a_rounds_ledger_adds_its_stages_up():
    stages = [
        {
            "round": "r002",
            "stage": "samples",
            "stage_wall_s": 1800.0,
            "stage_cpu_s": 3000.0,
            "stage_peak_rss_mb": 900.0,
            "tokens_generated": 50_000,
        },
        {
            "round": "r002",
            "stage": "verdicts",
            "stage_wall_s": 600.0,
            "stage_cpu_s": 500.0,
            "stage_peak_rss_mb": 950.0,
            "samples_verified": 8000,
        },
        {
            "round": "r002",
            "stage": "training_set",
            "stage_wall_s": 1.0,
            "stage_cpu_s": 1.0,
            "stage_peak_rss_mb": 950.0,
            "kept_rows": 200,
        },
        {
            "round": "r002",
            "stage": "evaluation",
            "stage_wall_s": 1199.0,
            "stage_cpu_s": 1000.0,
            "stage_peak_rss_mb": 1000.0,
            "frontier_delta": 0.05,
        },
    ]
    row = round_ledger(stages, price_per_hour=3.0)
    assert row["wall_s"] == 3600.0 and row["cpu_s"] == 4501.0 and row["peak_rss_mb"] == 1000.0
    assert row["kept_per_1k_samples"] == 25.0 and row["points_per_hour"] == pytest.approx(5.0)
    assert row["cost"] == pytest.approx(3.0) and row["tokens_generated"] == 50_000
    assert round_ledger([{"round": "r001", "stage": "samples"}])["points_per_hour"] is None  # an old round
