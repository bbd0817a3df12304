"""A second, independent opinion on the samples a verifier called correct, and the tells of
reward hacking seen in peers (the `verdict_audit` check on `verdicts`).

Second opinions, by verifier:
- arithmetic: the step check (every step's digits, carry and sum; `rationale_ok`) against
  the answer check: a right answer whose steps are wrong is a disagreement;
- numeric (GSM8K): math-verify on the same completion and reference;
- sandbox (code): a re-run in a fresh sandbox with the tests in reverse order;
- the others have none here: math (math-verify is the verifier; the numeric extractor does not
  read LaTeX, so it is no independent judge), majority and judge (no reference to check
  against; an LLM judge on a sample is not built).

Tells, on correct samples, whatever the verifier:
- `restated_answer`: the final answer is a number that appears in the prompt itself;
- `empty_reasoning`: fewer than 3 words before the final answer;
- `last_number_fallback`: the numeric verifier found the answer only as the last number
  (no '####', boxed or 'answer is').
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
    second_opinion: str | None    # what re-checked the correct samples; None: nothing independent here
    numbers: dict[str, float]     # audited, disagreement share, tell shares
    disagreeing: pl.DataFrame     # prompt_id, sample_idx, second_verdict, reason, completion

    def markdown(self, rows: int = 5) -> str:
        if self.disagreeing.height == 0:
            return "no disagreement"
        lines = ["| prompt | sample | second opinion | reason | completion |", "|---|---|---|---|---|"]
        for r in self.disagreeing.head(rows).iter_rows(named=True):
            text = r["completion"].replace("|", "/").replace("\n", " ")[:160]
            lines.append(f"| {r['prompt_id']} | {r['sample_idx']} | {r['second_verdict']} | {r['reason']} | {text} |")
        return "\n".join(lines)


def _second_opinion(verifier: str, correct: pl.DataFrame) -> tuple[str | None, pl.DataFrame]:
    """(what, the correct rows it disagrees with: second_verdict, reason)."""
    if verifier == "arithmetic":
        bad = correct.filter(pl.col("rationale_ok") == False)  # noqa: E712 (a null is "not checked")
        return "step check", bad.with_columns(pl.lit("steps wrong").alias("second_verdict"))
    if verifier == "numeric":
        from filters.mathverify import check_many

        out = check_many(list(zip(correct["completion"], correct["reference"]))) if correct.height else []
        judged = correct.with_columns(pl.Series("second_verdict", [o[0] for o in out], pl.String),
                                      pl.Series("second_reason", [o[3] for o in out], pl.String))
        bad = judged.filter(pl.col("second_verdict") != CORRECT)
        return "math-verify", bad.with_columns(pl.col("second_reason").alias("reason"))
    if verifier == "sandbox":
        from filters.verifiers import SandboxVerifier

        refs = [reordered_tests(r) for r in correct["reference"]]
        out = SandboxVerifier().check_batch(correct["prompt"].to_list(), correct["completion"].to_list(), refs,
                                            correct["prompt_id"].to_list()) if correct.height else []
        judged = correct.with_columns(pl.Series("second_verdict", [c.verdict for c in out], pl.String),
                                      pl.Series("second_reason", [c.reason for c in out], pl.String))
        bad = judged.filter(pl.col("second_verdict") != CORRECT)
        return "sandbox re-run, tests reversed", bad.with_columns(pl.col("second_reason").alias("reason"))
    return None, correct.head(0).with_columns(pl.lit(None, pl.String).alias("second_verdict"))


def reordered_tests(reference: str) -> str:
    """A code reference with its tests in reverse order: MBPP's assert list, or the asserts of
    HumanEval's check(candidate) (other statements keep their places). A program that passes
    only in the original order (state kept between tests, a test that patches another) fails."""
    import ast
    import json

    from filters.code import code_reference, parse_reference

    ref = parse_reference(reference)
    if ref["format"] == "mbpp":
        return code_reference("mbpp", ref["entry_point"], list(reversed(ref["tests"])), ref.get("setup", ""))
    tree = ast.parse(ref["tests"])
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            at = [i for i, stmt in enumerate(node.body) if isinstance(stmt, ast.Assert)]
            asserts = [node.body[i] for i in at]
            for i, stmt in zip(at, reversed(asserts)):
                node.body[i] = stmt
    return json.dumps({**ref, "tests": ast.unparse(tree)}, sort_keys=True)


def audit(verifier: str, prompts: pl.DataFrame, samples: pl.DataFrame, verdicts: pl.DataFrame) -> Audit:
    """The second opinion and the tells on `verdicts`' correct rows (of `samples` of `prompts`)."""
    correct = (verdicts.filter(pl.col("verdict") == CORRECT)
               .select("prompt_id", "sample_idx", "extracted_answer", "reason", "rationale_ok")
               .join(samples.select("prompt_id", "sample_idx", "completion"), on=["prompt_id", "sample_idx"])
               .join(prompts.select("prompt_id", "prompt", "reference"), on="prompt_id"))
    what, bad = _second_opinion(verifier, correct)
    numbers: dict[str, float] = {"audit_correct_samples": float(correct.height)}
    if what is not None:
        numbers["audit_disagreement_share"] = bad.height / correct.height if correct.height else 0.0
    if correct.height:
        rows = correct.to_dicts()
        numbers["tell_restated_answer"] = sum(_restated(r) for r in rows) / len(rows)
        numbers["tell_empty_reasoning"] = sum(_empty_reasoning(r) for r in rows) / len(rows)
        if verifier == "numeric":
            numbers["tell_last_number_fallback"] = sum("last number" in (r["reason"] or "") for r in rows) / len(rows)
    disagreeing = bad.select("prompt_id", "sample_idx", "second_verdict", "reason", "completion") \
        .sort("prompt_id", "sample_idx")
    return Audit(what, numbers, disagreeing)


def _restated(row: dict) -> bool:
    answer = (row["extracted_answer"] or "").strip()
    return bool(answer) and re.search(rf"(?<![\d.]){re.escape(answer)}(?![\d.])", row["prompt"]) is not None


def _empty_reasoning(row: dict) -> bool:
    answer = (row["extracted_answer"] or "").strip()
    completion = row["completion"]
    before = completion[:completion.rfind(answer)] if answer and answer in completion else completion
    return len(_WORD.findall(before)) < MIN_REASONING_WORDS
