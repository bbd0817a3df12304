"""LLM-as-judge verdicts (self-rewarding): a judge model scores each sample.

The judge's prompt and raw output are kept in the verdict's `details`, so every score
can be audited. reward = score / max_score; a score at or above the threshold counts as
correct; an output with no score in range is unverifiable, never a silent zero.
"""

from __future__ import annotations

import json
import re

import polars as pl

from selftaught import schemas
from selftaught.plugins import VERIFIERS
from selftaught.schemas import CORRECT, INCORRECT, UNVERIFIABLE
from synth.repair import fill

_SCORE = re.compile(r"-?\d+(?:\.\d+)?")


@VERIFIERS.register("judge", needs_reference=False, generates=True, graded=True)
class JudgeVerifier:
    """verification.verifier: judge. A model writes these verdicts, so the round generates
    them (judge_prompts, then judge_verdicts below, wired in assets.recipes.verdicts_for);
    no offline check() exists, and no GRPO reward (it would generate inside every step)."""

    name, version = "judge", "1"

    def check(self, prompt: str, completion: str, reference: str):
        raise TypeError(
            "the judge verifier generates its verdicts with a model: the round runs it "
            "(assets.recipes.verdicts_for); it has no offline check"
        )


def judge_prompts(samples: pl.DataFrame, template: str, turn=None) -> pl.DataFrame:
    """One judge prompt per sample; `prompt_id` is the sample's `<prompt_id>~<sample_idx>`.
    `turn` (synth.tasks.UserTurn): a chat task's judge question is one user turn."""
    return samples.select(
        pl.concat_str("prompt_id", pl.col("sample_idx").cast(pl.String), separator="~").alias("prompt_id"),
        fill(template, turn, prompt=pl.col("prompt"), completion=pl.col("completion")).alias("prompt"),
    )


def parse_score(text: str, max_score: int) -> float | None:
    """The first number in the judge's output, if it lies in [0, max_score]."""
    m = _SCORE.search(text)
    if not m:
        return None
    score = float(m.group())
    return score if 0 <= score <= max_score else None


def judge_verdicts(
    samples: pl.DataFrame, judged: pl.DataFrame, judge_id: str, max_score: int, threshold: float
) -> pl.DataFrame:
    """`judged`: the judge's generation rows (prompt_id = `<prompt_id>~<sample_idx>`, prompt, completion)."""
    out = {pid: (p, c) for pid, p, c in zip(judged["prompt_id"], judged["prompt"], judged["completion"])}
    rows = []
    for r in samples.select("round", "prompt_id", "sample_idx").iter_rows(named=True):
        judge_prompt, text = out[f"{r['prompt_id']}~{r['sample_idx']}"]
        score = parse_score(text, max_score)
        if score is None:
            verdict, reason = UNVERIFIABLE, f"judge output has no score in 0..{max_score}: {text[:40]!r}"
        else:
            verdict = CORRECT if score >= threshold else INCORRECT
            reason = f"judge score {score:g}/{max_score} (threshold {threshold:g})"
        rows.append(
            {
                **r,
                "verdict": verdict,
                "reward": (score or 0.0) / max_score,
                "extracted_answer": None,
                "parsed_reference": None,
                "rationale_ok": None,
                "reason": reason,
                "verifier": f"judge:{judge_id}@1",
                "details": json.dumps({"judge_prompt": judge_prompt, "judge_output": text, "score": score}),
            }
        )
    return schemas.validate(pl.DataFrame(rows, schema=schemas.VERDICTS_TABLE), "verdicts")
