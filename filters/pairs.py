"""Preference pairs from verified samples, three ways:

- correct_incorrect (iterative RPO, V-STaR's verifier): the i-th correct sample of a prompt
  with its i-th incorrect one, lowest sample_idx first. Prompts whose samples are all
  correct or all wrong give no pair (zero variance: no preference to learn).
- best_worst (self-rewarding judge pairs): the highest-reward sample against the lowest;
  a prompt whose best and worst rewards tie gives none.
- reference (SPIN): the dataset's worked solution against the policy's own samples; a
  sample identical to the reference gives none.
Pairing is deterministic; at most `max_per_prompt` pairs per prompt.
"""

from __future__ import annotations

import polars as pl

from filters.select import judged
from selftaught import schemas
from selftaught.schemas import CORRECT, INCORRECT, UNVERIFIABLE

PAIR_SOURCES = ("correct_incorrect", "best_worst", "reference")


def make_pairs(
    source: str, samples: pl.DataFrame, verdicts: pl.DataFrame, prompts: pl.DataFrame, max_per_prompt: int = 1
) -> pl.DataFrame:
    if source == "correct_incorrect":
        return correctness_pairs(samples, verdicts, max_per_prompt)
    if source == "best_worst":
        return best_worst_pairs(samples, verdicts)
    if source == "reference":
        return reference_pairs(samples, prompts, max_per_prompt)
    raise ValueError(f"pair source must be one of {PAIR_SOURCES}, got {source!r}")


def correctness_pairs(samples: pl.DataFrame, verdicts: pl.DataFrame, max_per_prompt: int = 1) -> pl.DataFrame:
    df = judged(samples, verdicts).sort("prompt_id", "sample_idx")
    good = df.filter(pl.col("verdict") == CORRECT).with_columns(rank=pl.int_range(pl.len()).over("prompt_id"))
    bad = df.filter(pl.col("verdict") == INCORRECT).with_columns(rank=pl.int_range(pl.len()).over("prompt_id"))
    pairs = good.join(_as_rejected(bad, "prompt_id", "rank"), on=["prompt_id", "rank"])
    return _pairs(pairs.filter(pl.col("rank") < max_per_prompt).sort("prompt_id", "rank"))


def best_worst_pairs(samples: pl.DataFrame, verdicts: pl.DataFrame) -> pl.DataFrame:
    df = judged(samples, verdicts).filter(pl.col("verdict") != UNVERIFIABLE)
    best = (
        df.sort("prompt_id", "reward", "sample_idx", descending=[False, True, False])
        .group_by("prompt_id", maintain_order=True)
        .first()
    )
    worst = (
        df.sort("prompt_id", "reward", "sample_idx", descending=[False, False, False])
        .group_by("prompt_id", maintain_order=True)
        .first()
    )
    pairs = best.join(_as_rejected(worst, "prompt_id"), on="prompt_id").filter(
        pl.col("reward") > pl.col("rejected_reward")
    )
    return _pairs(pairs.sort("prompt_id"))


def reference_pairs(samples: pl.DataFrame, prompts: pl.DataFrame, max_per_prompt: int = 1) -> pl.DataFrame:
    refs = prompts.select("prompt_id", pl.col("target").alias("ref"))
    df = samples.join(refs, on="prompt_id", how="left").sort("prompt_id", "sample_idx")
    missing = df.filter(pl.col("ref").fill_null("").str.strip_chars() == "")
    if missing.height:
        raise ValueError(
            f"pairs 'reference' (SPIN) needs a worked solution (target) for every prompt; "
            f"{missing['prompt_id'].n_unique()} prompts have none, e.g. {missing['prompt_id'][0]}"
        )
    own = df.filter(pl.col("completion").str.strip_chars() != pl.col("ref").str.strip_chars())
    own = own.filter(pl.int_range(pl.len()).over("prompt_id") < max_per_prompt)
    pairs = own.select(
        "round",
        "prompt_id",
        "policy_id",
        "prompt",
        pl.col("ref").alias("completion"),
        pl.lit(-1, pl.Int32).alias("sample_idx"),
        pl.lit(1.0).alias("reward"),
        pl.col("completion").alias("rejected"),
        pl.col("sample_idx").alias("rejected_sample_idx"),
        pl.lit(None, pl.Float64).alias("rejected_reward"),
    )
    return _pairs(pairs)


def _as_rejected(df: pl.DataFrame, *keys: str) -> pl.DataFrame:
    return df.select(
        *keys,
        pl.col("completion").alias("rejected"),
        pl.col("sample_idx").alias("rejected_sample_idx"),
        pl.col("reward").alias("rejected_reward"),
    )


def _pairs(pairs: pl.DataFrame) -> pl.DataFrame:
    out = pairs.select(
        pl.concat_str(
            "round",
            "prompt_id",
            pl.col("sample_idx").cast(pl.String),
            pl.col("rejected_sample_idx").cast(pl.String),
            separator="/",
        ).alias("row_id"),
        pl.col("round").alias("source_round"),
        "prompt_id",
        "policy_id",
        "prompt",
        pl.col("completion").alias("chosen"),
        "rejected",
        pl.col("sample_idx").alias("chosen_sample_idx"),
        "rejected_sample_idx",
        pl.col("reward").alias("chosen_reward"),
        "rejected_reward",
    )
    return schemas.validate(out, "preference_pairs")
