"""Selection rules: which verified samples become training rows."""

from __future__ import annotations

import polars as pl

from selftaught import schemas
from selftaught.schemas import CORRECT


def judged(samples: pl.DataFrame, verdicts: pl.DataFrame) -> pl.DataFrame:
    """Samples joined with their verdicts; every sample must have exactly one verdict."""
    keys = ["round", "prompt_id", "sample_idx"]
    out = samples.join(verdicts, on=keys, how="left", validate="1:1")
    unjudged = out.filter(pl.col("verdict").is_null()).height
    if unjudged:
        raise ValueError(f"{unjudged} samples have no verdict")
    return out


def select_sft(
    samples: pl.DataFrame,
    verdicts: pl.DataFrame,
    max_per_prompt: int = 1,
    require_rationale: bool = False,
    dedup: bool = True,
) -> pl.DataFrame:
    """Keep correct samples (optionally with a consistent rationale), at most
    `max_per_prompt` per prompt, lowest sample_idx first (deterministic)."""
    df = judged(samples, verdicts).filter(pl.col("verdict") == CORRECT)
    if require_rationale:
        df = df.filter(pl.col("rationale_ok").fill_null(False))
    df = df.sort("prompt_id", "sample_idx")
    if dedup:
        df = df.with_columns(_norm=pl.col("completion").str.strip_chars().str.replace_all(r"\s+", " "))
        df = df.unique(subset=["prompt_id", "_norm"], keep="first", maintain_order=True).drop("_norm")
    df = df.filter(pl.int_range(pl.len()).over("prompt_id") < max_per_prompt)
    rows = df.select(
        pl.concat_str("round", "prompt_id", pl.col("sample_idx").cast(pl.String), separator="/").alias("row_id"),
        pl.col("round").alias("source_round"),
        "prompt_id",
        "sample_idx",
        "policy_id",
        "policy_hash",
        "prompt",
        "completion",
        "reward",
    )
    return schemas.validate(rows, "sft_rows")


def accumulate(previous: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame:
    """Training rows of earlier rounds plus this round's, each row_id once."""
    if previous is None:
        return new
    both = pl.concat([schemas.validate(previous, "sft_rows"), new])
    return both.unique(subset="row_id", keep="first", maintain_order=True)
