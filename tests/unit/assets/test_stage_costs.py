"""Per-stage costs (assets/stage_costs.py): a stage reports its own peak memory, not the
process's high-water mark."""

from __future__ import annotations


def test_a_stage_reports_its_own_peak_memory_not_the_process_high_water_mark():
    """Stages run one after another in one process (`selftaught run`): a small stage after a
    big one must not report the big one's peak (the ledger's peak grew 5.4 -> 6.1 -> 6.5 GB
    over three real-model rounds partly because each stage reported the run's peak so far)."""
    import numpy as np

    from assets.stage_costs import _Meter

    big = _Meter()
    block = np.ones(400 * 2**20 // 8)  # 400 MB, touched
    big_peak = big.read()["stage_peak_rss_mb"]
    del block
    small = _Meter()
    block = np.ones(20 * 2**20 // 8)
    small_peak = small.read()["stage_peak_rss_mb"]
    del block
    assert big_peak - small_peak > 300, (big_peak, small_peak)
