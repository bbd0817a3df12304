"""The round assets' checks (assets/rounds.py): the verdict audit warns on disagreement and
stops the round above the bound."""

from __future__ import annotations

import dagster as dg
import polars as pl


def test_the_check_warns_on_disagreement_and_stops_the_round_above_the_bound():
    from assets.rounds import _audit_check
    from filters.audit import Audit

    empty = pl.DataFrame(
        schema={
            "prompt_id": pl.String,
            "sample_idx": pl.Int32,
            "second_verdict": pl.String,
            "reason": pl.String,
            "completion": pl.String,
        }
    )
    some = Audit("step check", {"audit_disagreement_share": 0.1}, empty)
    assert _audit_check(Audit("step check", {"audit_disagreement_share": 0.0}, empty), None).passed
    warn = _audit_check(some, None)
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
    assert _audit_check(some, 0.2).severity == dg.AssetCheckSeverity.WARN
    assert _audit_check(some, 0.05).severity == dg.AssetCheckSeverity.ERROR
