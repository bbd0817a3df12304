"""B-STaR's choice of sampling temperature and reward threshold for a round.

Sample a dev slice at each candidate temperature, score every (temperature, threshold) by
the balance score (filters.metrics.balance_score), keep the best; ties go to the
temperature nearest the configured one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from filters.metrics import balance_score


@dataclass(frozen=True)
class Choice:
    temperature: float
    threshold: float
    table: list[dict]  # one row per (temperature, threshold) with its scores

    def chosen(self) -> dict:
        return next(r for r in self.table if r["temperature"] == self.temperature and r["threshold"] == self.threshold)


def search(balance, default_temperature: float, judged_at: Callable[[float], pl.DataFrame]) -> Choice:
    """`balance`: a `BalanceConfig`. `judged_at(t)`: the dev slice sampled at temperature t,
    joined with its verdicts (filters.select.judged)."""
    table = []
    for t in balance.temperatures:
        df = judged_at(t)
        for tau in balance.thresholds:
            table.append({"temperature": t, "threshold": tau, **balance_score(df, tau, balance.desired_correct)})
    best = max(table, key=lambda r: (r["balance_score"], -abs(r["temperature"] - default_temperature)))
    return Choice(best["temperature"], best["threshold"], table)
