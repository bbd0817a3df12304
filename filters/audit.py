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

from filters.numeric import PY_WHITESPACE
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


def audit(
    verifier, prompts: pl.DataFrame, samples: pl.DataFrame, verdicts: pl.DataFrame, max_rows: int | None = None
) -> Audit:
    """The second opinion and the tells on `verdicts`' correct rows (of `samples` of `prompts`);
    `verifier` is the one that judged them (filters.verifiers.build_verifier), or its name.

    The tells read every correct row (polars expressions). The second opinion re-checks at most
    `max_rows` of them (verification.audit_rows; None: all), a seeded random sample, so a
    1.6M-sample round is audited in seconds; `audit_second_opinion_rows` says how many it read."""
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
    numbers: dict[str, float] = {"audit_correct_samples": float(correct.height)}
    if what is not None:
        reread = correct if max_rows is None or correct.height <= max_rows else correct.sample(max_rows, seed=0)
        bad = verifier.second_opinion(reread)
        numbers["audit_second_opinion_rows"] = float(reread.height)
        numbers["audit_disagreement_share"] = bad.height / reread.height if reread.height else 0.0
    else:
        bad = correct.head(0).with_columns(pl.lit(None, pl.String).alias("second_verdict"))
    if correct.height:
        tells = _tells(correct)
        numbers["tell_restated_answer"] = int(tells["restated"].sum()) / tells.height
        numbers["tell_empty_reasoning"] = int(tells["empty"].sum()) / tells.height
        if hasattr(verifier, "tells"):
            numbers.update(verifier.tells(correct))
    disagreeing = bad.select("prompt_id", "sample_idx", "second_verdict", "reason", "completion").sort(
        "prompt_id", "sample_idx"
    )
    return Audit(what, numbers, disagreeing)


def _tells(correct: pl.DataFrame) -> pl.DataFrame:
    """restated and empty-reasoning flags of each correct row. The patterns depend on the answer,
    so each distinct answer is one regex pass over its rows (polars compiles no pattern per
    row); with more distinct answers than DISTINCT_ANSWERS_PER_PASS per pass, row by row."""
    df = correct.select("prompt", "completion", pl.col("extracted_answer").fill_null("").alias("answer"))
    df = df.with_columns(pl.col("answer").str.strip_chars(PY_WHITESPACE)).with_row_index("_row")
    distinct = df["answer"].n_unique()
    if distinct * DISTINCT_ANSWERS_PER_PASS > df.height:
        flags = [
            (_restated_row(a, p), _empty_row(a, c))
            for p, c, a in df.select("prompt", "completion", "answer").iter_rows()
        ]
        return pl.DataFrame(flags, schema={"restated": pl.Boolean, "empty": pl.Boolean}, orient="row")
    parts = []
    for (answer,), rows in df.group_by("answer"):
        words = pl.col("completion")
        if answer:
            words = (
                pl.when(pl.col("completion").str.contains(answer, literal=True))
                .then(pl.col("completion").str.extract(f"(?s)^(.*){pl.escape_regex(answer)}", 1))
                .otherwise(pl.col("completion"))
            )
        restated = (
            pl.col("prompt").str.contains(rf"(?:^|[^\d.]){pl.escape_regex(answer)}(?:[^\d.]|$)")
            if answer
            else pl.lit(False)
        )
        parts.append(
            rows.select(
                "_row",
                restated.alias("restated"),
                (words.str.count_matches(_WORD.pattern) < MIN_REASONING_WORDS).alias("empty"),
            )
        )
    return pl.concat(parts).sort("_row").drop("_row")


DISTINCT_ANSWERS_PER_PASS = 50  # rows a regex pass must serve to beat Python's per-row regexes


def _restated_row(answer: str, prompt: str) -> bool:
    return bool(answer) and re.search(rf"(?<![\d.]){re.escape(answer)}(?![\d.])", prompt) is not None


def _empty_row(answer: str, completion: str) -> bool:
    before = completion[: completion.rfind(answer)] if answer and answer in completion else completion
    return len(_WORD.findall(before)) < MIN_REASONING_WORDS
