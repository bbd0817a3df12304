"""What a reflection prompt tells the policy about its failed sample (Re-ReST).

Built from the verdict, never from the reference: feedback that contained the answer
would turn reflection into rationalization. Code tasks pass the sandbox's reason (which
test failed and how), as Re-ReST does with unit-test results.
"""

from __future__ import annotations

import polars as pl

from selftaught.schemas import INCORRECT

_MAX_CHARS = 300


def feedback(verdict: str, extracted_answer: str | None, reason: str, verifier: str) -> str:
    if verifier.startswith("sandbox"):
        return reason[:_MAX_CHARS]
    if verdict == INCORRECT and extracted_answer is None:
        return "no final answer was found."
    if verdict == INCORRECT:
        return f"the answer {extracted_answer} is wrong."
    return "the answer could not be checked."


def with_feedback(judged: pl.DataFrame) -> pl.DataFrame:
    """`judged` (samples joined with verdicts) plus a `feedback` column."""
    return judged.with_columns(
        pl.struct("verdict", "extracted_answer", "reason", "verifier")
        .map_elements(lambda r: feedback(r["verdict"], r["extracted_answer"], r["reason"] or "", r["verifier"]),
                      return_dtype=pl.String)
        .alias("feedback"))
