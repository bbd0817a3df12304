"""Preference pairs from verified samples: (correct, incorrect) of the same prompt.

Prompts whose samples are all correct or all wrong give no pair (zero variance: no
preference to learn). Pairing is deterministic: the i-th correct sample with the
i-th incorrect one, lowest sample_idx first, at most `max_per_prompt` pairs.
"""

from __future__ import annotations

import polars as pl

from filters.select import judged
from selftaught import schemas
from selftaught.schemas import CORRECT, INCORRECT


def correctness_pairs(samples: pl.DataFrame, verdicts: pl.DataFrame, max_per_prompt: int = 1) -> pl.DataFrame:
    df = judged(samples, verdicts).sort("prompt_id", "sample_idx")
    good = df.filter(pl.col("verdict") == CORRECT).with_columns(rank=pl.int_range(pl.len()).over("prompt_id"))
    bad = df.filter(pl.col("verdict") == INCORRECT).with_columns(rank=pl.int_range(pl.len()).over("prompt_id"))
    pairs = good.join(bad.select("prompt_id", "rank", pl.col("completion").alias("rejected"),
                                 pl.col("sample_idx").alias("rejected_sample_idx")), on=["prompt_id", "rank"])
    pairs = pairs.filter(pl.col("rank") < max_per_prompt).sort("prompt_id", "rank")
    out = pairs.select(
        pl.concat_str("round", "prompt_id", pl.col("sample_idx").cast(pl.String),
                      pl.col("rejected_sample_idx").cast(pl.String), separator="/").alias("row_id"),
        pl.col("round").alias("source_round"),
        "prompt_id",
        "policy_id",
        "prompt",
        pl.col("completion").alias("chosen"),
        "rejected",
        pl.col("sample_idx").alias("chosen_sample_idx"),
        "rejected_sample_idx",
    )
    return schemas.validate(out, "preference_pairs")
