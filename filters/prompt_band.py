"""Prompts chosen by what earlier rounds measured (sampling.prompt_band).

A self-training experiment keeps every prompt's solve rate in versioned tables: the samples and
verdicts of an offline round, the rollouts of a GRPO round. A round with a band takes back the
earlier prompts whose latest solve rate lies strictly inside it (for GRPO, 0 < rate < 1: a group
whose rollouts all score the same has zero advantage and gives no gradient), the most uncertain
first, and fills the rest of its pool with fresh prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from selftaught import schemas
from selftaught.schemas import CORRECT


@dataclass(frozen=True)
class BandChoice:
    prompts: pl.DataFrame  # this round's pool (prompts schema)
    numbers: dict[str, float]  # what was measured, kept and filled (the prompts asset's metadata)


def latest_solve_rates(judged_by_round: list[tuple[str, pl.DataFrame]]) -> pl.DataFrame:
    """One row per prompt: its solve rate (share of correct verdicts), the samples it is measured
    on and the round that measured it, from the latest round that sampled it. `judged_by_round`:
    (round key, samples with a `verdict` column), in round order."""
    frames = [
        judged.group_by("prompt_id")
        .agg(samples=pl.len(), solve_rate=(pl.col("verdict") == CORRECT).mean())
        .with_columns(measured_in=pl.lit(key), order=pl.lit(i))
        for i, (key, judged) in enumerate(judged_by_round)
        if judged.height
    ]
    if not frames:
        return pl.DataFrame(
            schema={"prompt_id": pl.String, "samples": pl.UInt32, "solve_rate": pl.Float64, "measured_in": pl.String}
        )
    return (
        pl.concat(frames)
        .sort("order", "prompt_id", descending=[True, False])
        .unique("prompt_id", keep="first", maintain_order=True)
        .drop("order")
        .sort("prompt_id")
    )


def choose_prompts(
    fresh: pl.DataFrame, earlier: pl.DataFrame, rates: pl.DataFrame, low: float, high: float, fill: bool, round_key: str
) -> BandChoice:
    """This round's pool: `earlier` prompts whose rate in `rates` is inside (low, high), nearest 0.5
    first, at most as many as `fresh` holds; then, with `fill`, fresh prompts no earlier round
    measured, up to that size. Reused prompts join this round's pool (their `round` is `round_key`)."""
    size = fresh.height
    measured = earlier.unique("prompt_id", keep="last", maintain_order=True).join(rates, on="prompt_id")
    in_band = measured.filter((pl.col("solve_rate") > low) & (pl.col("solve_rate") < high))
    reused = in_band.sort((pl.col("solve_rate") - 0.5).abs(), pl.col("prompt_id")).head(size)
    unmeasured = fresh.filter(~pl.col("prompt_id").is_in(measured["prompt_id"].implode()))
    new = unmeasured.head(size - reused.height if fill else 0)
    columns = list(schemas.TABLES["prompts"])
    pool = pl.concat(
        [
            reused.with_columns(round=pl.lit(round_key)).select(columns),
            new.select(columns),
        ],
        how="vertical_relaxed",
    )
    numbers = {
        "low": low,
        "high": high,
        "candidates": float(measured.height + unmeasured.height),
        "measured": float(measured.height),
        "in_band": float(in_band.height),
        "reused": float(reused.height),
        "fresh": float(new.height),
        "kept": float(pool.height),
    }
    if reused.height:
        numbers["reused_mean_solve_rate"] = float(reused["solve_rate"].mean())  # type: ignore[arg-type]
    return BandChoice(pool, numbers)
