"""What a reflection prompt tells the policy about its failed sample (Re-ReST).

Built from the verdict, never from the reference: feedback that contained the answer
would turn reflection into rationalization. What a verifier's feedback is comes from its
capability `feedback` (selftaught.plugins.VerifierCaps): "answer" says the extracted answer
is wrong (or that none was found); "reason" passes the verdict's reason (the sandbox: which
test failed and how, as Re-ReST does with unit-test results; user verifiers: what they return).
"""

from __future__ import annotations

import polars as pl

from selftaught.schemas import INCORRECT

_MAX_CHARS = 300


def feedback(verdict: str, extracted_answer: str | None, reason: str, mode: str = "answer") -> str:
    """The feedback on one verdict; `mode` is the verifier's `feedback` capability."""
    if mode == "reason":
        return reason[:_MAX_CHARS]
    if verdict == INCORRECT and extracted_answer is None:
        return "no final answer was found."
    if verdict == INCORRECT:
        return f"the answer {extracted_answer} is wrong."
    return "the answer could not be checked."


def with_feedback(judged: pl.DataFrame, mode: str = "answer") -> pl.DataFrame:
    """`judged` (samples joined with verdicts) plus a `feedback` column."""
    return judged.with_columns(
        pl.struct("verdict", "extracted_answer", "reason")
        .map_elements(
            lambda r: feedback(r["verdict"], r["extracted_answer"], r["reason"] or "", mode), return_dtype=pl.String
        )
        .alias("feedback")
    )
