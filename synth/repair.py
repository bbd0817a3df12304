"""Prompts for second attempts (repair.mode).

rationalize (STaR): each prompt with no correct sample, with its reference answer as a hint.
reflect (Re-ReST): each failed sample, with the verifier's feedback, asking for a new try.
Each attempt gets an `attempt_id` (the generation job's prompt id) that maps back to the
original prompt and, for reflection, to the failed sample.
"""

from __future__ import annotations

import polars as pl

from selftaught.schemas import CORRECT
from synth.tasks import UserTurn


def _fill(template: str, **values: str) -> str:
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    return out


def fill(template: str, turn: UserTurn | None = None, **placeholders: pl.Expr) -> pl.Expr:
    """`template` with each {name} replaced, row by row, by the value of its expression.
    With a chat `turn`, {prompt} is the question inside the rendered prompt, and the filled
    text becomes one user turn (not a chat transcript pasted into plain text)."""

    def one(row: dict) -> str:
        if turn is None:
            return _fill(template, **row)
        if "prompt" in row:
            row = {**row, "prompt": turn.unwrap(row["prompt"])}
        return turn.wrap(_fill(template, **row))

    return pl.struct(**placeholders).map_elements(one, return_dtype=pl.String)


def _hint(template: str, turn: UserTurn | None) -> pl.Expr:
    return fill(template, turn, prompt=pl.col("prompt"), reference=pl.col("reference").str.strip_chars())


def rationalize_attempts(prompts: pl.DataFrame, judged: pl.DataFrame, template: str,
                         turn: UserTurn | None = None) -> pl.DataFrame:
    solved = set(judged.filter(pl.col("verdict") == CORRECT)["prompt_id"])
    todo = prompts.filter(~pl.col("prompt_id").is_in(solved) & (pl.col("reference").str.strip_chars() != ""))
    return todo.sort("prompt_id").select(
        pl.col("prompt_id").alias("attempt_id"),
        "prompt_id",
        pl.lit(None, pl.Int32).alias("failed_sample_idx"),
        pl.lit(None, pl.String).alias("feedback"),
        _hint(template, turn).alias("attempt_prompt"),
        "prompt",
    )


def reflect_attempts(judged_with_feedback: pl.DataFrame, template: str, max_per_prompt: int,
                     turn: UserTurn | None = None) -> pl.DataFrame:
    """`judged_with_feedback`: samples joined with verdicts and filters.feedback.with_feedback."""
    failed = judged_with_feedback.filter(pl.col("verdict") != CORRECT).sort("prompt_id", "sample_idx")
    failed = failed.filter(pl.int_range(pl.len()).over("prompt_id") < max_per_prompt)
    return failed.select(
        pl.concat_str("prompt_id", pl.col("sample_idx").cast(pl.String), separator="~").alias("attempt_id"),
        "prompt_id",
        pl.col("sample_idx").alias("failed_sample_idx"),
        "feedback",
        fill(template, turn, prompt=pl.col("prompt"), completion=pl.col("completion"), feedback=pl.col("feedback"))
        .alias("attempt_prompt"),
        "prompt",
    )


def hinted_examples(warm: pl.DataFrame, share: float, template: str, turn: UserTurn | None = None) -> pl.DataFrame:
    """A `share` of the worked examples with the hint in the prompt (prompt, completion), so a
    model trained from scratch has seen the rationalization format (STaR's few-shot
    rationalization prompts play this part for a pretrained model)."""
    picked = warm.sort("prompt_id").head(round(share * warm.height))
    return picked.select(
        _hint(template, turn).alias("prompt"),
        pl.col("target").alias("completion"),
    )


def reflection_examples(warm: pl.DataFrame, share: float, template: str, failed: list[str],
                        feedback: list[str], turn: UserTurn | None = None) -> pl.DataFrame:
    """A `share` of the worked examples as reflections: the prompt, a failed attempt (another
    example's solution, verified wrong for this prompt, with its `feedback`), then the right
    solution. `failed` and `feedback` are aligned with `warm` sorted by prompt_id."""
    rows = warm.sort("prompt_id").with_columns(failed=pl.Series(failed), feedback=pl.Series(feedback))
    picked = rows.filter(pl.col("feedback").is_not_null()).head(round(share * warm.height))
    return picked.select(
        fill(template, turn, prompt=pl.col("prompt"), completion=pl.col("failed"), feedback=pl.col("feedback"))
        .alias("prompt"),
        pl.col("target").alias("completion"),
    )
