"""Selection rules: which verified samples become training rows."""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from selftaught import schemas
from selftaught.schemas import CORRECT

DEDUP_MODES = ("none", "exact", "normalized", "reasoning")
_CALC = re.compile(r"<<([^>]*)>>")  # GSM8K calculator annotations
_EQUATION = re.compile(r"-?\d[\d.,]*(?:\s*[-+*/x×÷]\s*-?\d[\d.,]*)+\s*=\s*-?\d[\d.,]*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def reasoning_signature(completion: str) -> str:
    """What makes two solutions the same reasoning path (RFT): their sequence of equations
    (GSM8K's <<...>> annotations, else `a op b = c` patterns), else their sequence of numbers.
    Wording, spacing and thousands separators do not count."""
    eqs = _CALC.findall(completion) or _EQUATION.findall(completion)
    if eqs:
        return ";".join(re.sub(r"[\s,]", "", e) for e in eqs)
    return ";".join(n for n in _NUMBER.findall(completion.replace(",", "")))


def _dedup_key(mode: str) -> pl.Expr | None:
    if mode == "exact":
        return pl.col("completion")
    if mode == "normalized":
        return pl.col("completion").str.strip_chars().str.replace_all(r"\s+", " ").str.to_lowercase()
    if mode == "reasoning":
        return pl.col("completion").map_elements(reasoning_signature, return_dtype=pl.String)
    return None


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
    dedup: bool | str = "normalized",
    min_chars: int | None = None,
    max_chars: int | None = None,
    min_reward: float | None = None,
) -> pl.DataFrame:
    """Keep correct samples (optionally with a consistent rationale, within length bounds),
    one per distinct completion (`dedup`: none | exact | normalized | reasoning, RFT's
    distinct reasoning paths), at most `max_per_prompt` per prompt, lowest sample_idx
    first (deterministic). `min_reward`: B-STaR's reward threshold."""
    df = judged(samples, verdicts).filter(pl.col("verdict") == CORRECT)
    if min_reward is not None:
        df = df.filter(pl.col("reward") >= min_reward)
    return _rows(_keep(df, max_per_prompt, require_rationale, dedup, min_chars, max_chars), "sample")


def _keep(
    df: pl.DataFrame,
    max_per_prompt: int,
    require_rationale: bool,
    dedup,
    min_chars,
    max_chars,
    order: str = "sample_idx",
) -> pl.DataFrame:
    mode = {True: "normalized", False: "none"}.get(dedup, dedup)
    if mode not in DEDUP_MODES:
        raise ValueError(f"dedup must be one of {DEDUP_MODES}, got {dedup!r}")
    if require_rationale:
        df = df.filter(pl.col("rationale_ok").fill_null(False))
    if min_chars is not None:
        df = df.filter(pl.col("completion").str.len_chars() >= min_chars)
    if max_chars is not None:
        df = df.filter(pl.col("completion").str.len_chars() <= max_chars)
    df = df.sort("prompt_id", order)
    key = _dedup_key(mode)
    if key is not None and df.height:
        df = df.with_columns(_key=key)
        df = df.unique(subset=["prompt_id", "_key"], keep="first", maintain_order=True).drop("_key")
    return df.filter(pl.int_range(pl.len()).over("prompt_id") < max_per_prompt)


def _rows(df: pl.DataFrame, origin: str) -> pl.DataFrame:
    repair = origin != "sample"
    idx = pl.col("repair_idx") if repair else pl.col("sample_idx")
    rows = df.select(
        pl.concat_str(
            "round",
            "prompt_id",
            pl.lit("repair-") + idx.cast(pl.String) if repair else idx.cast(pl.String),
            separator="/",
        ).alias("row_id"),
        pl.col("round").alias("source_round"),
        "prompt_id",
        idx.alias("sample_idx"),
        "policy_id",
        "policy_hash",
        "prompt",
        "completion",
        "reward",
        (pl.col("mode") if repair else pl.lit(origin)).alias("origin"),
        (pl.col("failed_sample_idx") if repair else pl.lit(None, pl.Int32)).alias("repaired_sample_idx"),
    )
    return schemas.validate(rows, "sft_rows")


def select_repairs(
    repairs: pl.DataFrame,
    max_per_prompt: int = 1,
    require_rationale: bool = False,
    dedup: bool | str = "normalized",
    min_chars: int | None = None,
    max_chars: int | None = None,
) -> pl.DataFrame:
    """Verified second attempts (rationalizations, reflections) as training rows on the
    original prompt; row_id `<round>/<prompt_id>/repair-<k>`, `repaired_sample_idx` links a
    reflection to the failed sample it repairs."""
    df = repairs.filter(pl.col("verdict") == CORRECT)
    return _rows(_keep(df, max_per_prompt, require_rationale, dedup, min_chars, max_chars, "repair_idx"), "repair")


def accumulate(previous: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame:
    """Training rows of earlier rounds plus this round's, each row_id once."""
    if previous is None:
        return new
    both = pl.concat([schemas.validate(previous, "sft_rows"), new])
    return both.unique(subset="row_id", keep="first", maintain_order=True)


def warm_start_rows(warm: pl.DataFrame) -> pl.DataFrame:
    """The worked examples (a prompts table with targets) as training rows (selection.include_warm_start)."""
    return schemas.validate(
        warm.select(
            pl.concat_str(pl.lit("warm_start"), "prompt_id", pl.lit("0"), separator="/").alias("row_id"),
            pl.lit("warm_start").alias("source_round"),
            "prompt_id",
            pl.lit(0).alias("sample_idx"),
            pl.lit("reference").alias("policy_id"),
            pl.lit("").alias("policy_hash"),
            "prompt",
            pl.col("target").alias("completion"),
            pl.lit(1.0).alias("reward"),
            pl.lit("warm_start").alias("origin"),
            pl.lit(None, pl.Int32).alias("repaired_sample_idx"),
        ),
        "sft_rows",
    )


@dataclass(frozen=True)
class TrainingRows:
    """A round's SFT rows (`rows`) and what this round added to them (`new`: kept samples and
    verified repairs, of which `repairs` repairs)."""

    rows: pl.DataFrame
    new: pl.DataFrame
    repairs: int


def training_rows(
    samples: pl.DataFrame,
    verdicts: pl.DataFrame,
    repairs: pl.DataFrame,
    selection,
    *,
    min_reward: float | None = None,
    warm_start: pl.DataFrame | None = None,
    earlier: pl.DataFrame | None = None,
) -> TrainingRows:
    """A round's training set by `selection` (a selftaught.config.SelectionConfig): the kept
    samples (select_sft, at B-STaR's `min_reward`) and verified repairs, after the warm start's
    worked examples (`warm_start`, a prompts table with targets; selection.include_warm_start)
    and the earlier rounds' rows (`earlier`, the parent's training set; selection.accumulate),
    each row_id once."""
    keep = {
        "max_per_prompt": selection.max_per_prompt,
        "require_rationale": selection.require_rationale,
        "dedup": selection.dedup,
        "min_chars": selection.min_chars,
        "max_chars": selection.max_chars,
    }
    new = select_sft(samples, verdicts, **keep, min_reward=min_reward)
    fixed = select_repairs(repairs, **keep)
    new = pl.concat([new, fixed]) if fixed.height else new
    rows = warm_start_rows(warm_start) if selection.include_warm_start and warm_start is not None else None
    if selection.accumulate and earlier is not None:
        rows = accumulate(rows, earlier)
    return TrainingRows(accumulate(rows, new), new, fixed.height)
