"""A second, independent opinion on the samples a verifier called correct, and the tells of
reward hacking seen in peers (the `verdict_audit` check on `verdicts`).

The second opinion is the verifier's own (its capability `second_opinion` names it; the
verifier's `second_opinion(correct)` runs it): the arithmetic verifier's step check,
math-verify behind the numeric extractor, a sandbox re-run of code with its tests reversed,
and for user code the same check again in a fresh process (a non-deterministic checker
disagrees with itself). Verifiers without one (math, majority, the judge) are audited by
the tells alone.

Tells, on correct samples, whatever the verifier:
- `restated_answer`: the final answer is a number that appears in the prompt itself;
- `empty_reasoning`: fewer than 3 words before the final answer;
- and the verifier's own (`tells(rows)`): the numeric verifier's `last_number_fallback`, the
  answer found only as the last number (no '####', boxed or 'answer is').
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from selftaught.schemas import CORRECT

_WORD = re.compile(r"[A-Za-z0-9]+")
MIN_REASONING_WORDS = 3


@dataclass(frozen=True)
class Audit:
    second_opinion: str | None  # what re-checked the correct samples; None: nothing independent here
    numbers: dict[str, float]  # audited, disagreement share, tell shares
    disagreeing: pl.DataFrame  # prompt_id, sample_idx, second_verdict, reason, completion

    def markdown(self, rows: int = 5) -> str:
        if self.disagreeing.height == 0:
            return "no disagreement"
        lines = ["| prompt | sample | second opinion | reason | completion |", "|---|---|---|---|---|"]
        for r in self.disagreeing.head(rows).iter_rows(named=True):
            text = r["completion"].replace("|", "/").replace("\n", " ")[:160]
            lines.append(f"| {r['prompt_id']} | {r['sample_idx']} | {r['second_verdict']} | {r['reason']} | {text} |")
        return "\n".join(lines)


def audit(verifier, prompts: pl.DataFrame, samples: pl.DataFrame, verdicts: pl.DataFrame) -> Audit:
    """The second opinion and the tells on `verdicts`' correct rows (of `samples` of `prompts`);
    `verifier` is the one that judged them (filters.verifiers.build_verifier), or its name."""
    if isinstance(verifier, str):
        from filters.verifiers import get_verifier

        verifier = get_verifier(verifier)
    correct = (
        verdicts.filter(pl.col("verdict") == CORRECT)
        .select("prompt_id", "sample_idx", "extracted_answer", "reason", "rationale_ok")
        .join(samples.select("prompt_id", "sample_idx", "completion"), on=["prompt_id", "sample_idx"])
        .join(
            prompts.select("prompt_id", "prompt", "reference", *(["fields"] if "fields" in prompts.columns else [])),
            on="prompt_id",
        )
    )
    what = verifier.plugin.caps.second_opinion if hasattr(verifier, "second_opinion") else None
    bad = (
        verifier.second_opinion(correct)
        if what is not None
        else correct.head(0).with_columns(pl.lit(None, pl.String).alias("second_verdict"))
    )
    numbers: dict[str, float] = {"audit_correct_samples": float(correct.height)}
    if what is not None:
        numbers["audit_disagreement_share"] = bad.height / correct.height if correct.height else 0.0
    if correct.height:
        rows = correct.to_dicts()
        numbers["tell_restated_answer"] = sum(_restated(r) for r in rows) / len(rows)
        numbers["tell_empty_reasoning"] = sum(_empty_reasoning(r) for r in rows) / len(rows)
        if hasattr(verifier, "tells"):
            numbers.update(verifier.tells(rows))
    disagreeing = bad.select("prompt_id", "sample_idx", "second_verdict", "reason", "completion").sort(
        "prompt_id", "sample_idx"
    )
    return Audit(what, numbers, disagreeing)


def _restated(row: dict) -> bool:
    answer = (row["extracted_answer"] or "").strip()
    return bool(answer) and re.search(rf"(?<![\d.]){re.escape(answer)}(?![\d.])", row["prompt"]) is not None


def _empty_reasoning(row: dict) -> bool:
    answer = (row["extracted_answer"] or "").strip()
    completion = row["completion"]
    before = completion[: completion.rfind(answer)] if answer and answer in completion else completion
    return len(_WORD.findall(before)) < MIN_REASONING_WORDS
