"""Verifiers: turn (prompt, completion, reference) into a three-valued verdict.

A verifier error on one row gives that row `unverifiable` with the error as the
reason; it never silently becomes `incorrect` (a whole batch scored 0 that way
in a peer project).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Protocol

import polars as pl

from selftaught import schemas
from selftaught.schemas import CORRECT, INCORRECT, UNVERIFIABLE


@dataclass(frozen=True)
class Check:
    verdict: str
    reward: float
    extracted_answer: str | None
    reason: str
    rationale_ok: bool | None = None


class Verifier(Protocol):
    name: str
    version: str

    def check(self, prompt: str, completion: str, reference: str) -> Check: ...


_ANSWER = re.compile(r"answer\s+(-?\d+)")
_PROMPT = re.compile(r"Q:\s*(\d+)\+(\d+)=\?")
_STEP = re.compile(r"^(\d)\+(\d)\+(\d)=(\d+):(\d+)$")


def rationale_consistent(a: int, b: int, steps: list[str], answer: str) -> tuple[bool, str]:
    """True when every step's arithmetic, digit and carry is right and the last partial is the answer."""
    da, db = str(a)[::-1], str(b)[::-1]
    carry, partial = 0, ""
    width = max(len(da), len(db))
    if len(steps) not in (width, width + 1):
        return False, f"{len(steps)} steps for {width}-digit operands"
    for i, step in enumerate(steps):
        m = _STEP.match(step.strip())
        if not m:
            return False, f"step {i + 1} is malformed: {step.strip()[:40]!r}"
        x, y, c, s, p = int(m[1]), int(m[2]), int(m[3]), int(m[4]), m[5]
        want_x = int(da[i]) if i < len(da) else 0
        want_y = int(db[i]) if i < len(db) else 0
        if (x, y, c) != (want_x, want_y, carry):
            return False, f"step {i + 1} uses wrong digits or carry"
        if s != x + y + c:
            return False, f"step {i + 1}: {x}+{y}+{c} is not {s}"
        partial = str(s % 10) + partial if i < width else str(s) + partial
        if p != partial:
            return False, f"step {i + 1}: partial {p} should be {partial}"
        carry = s // 10
    if partial != answer:
        return False, f"last partial {partial} differs from the answer {answer}"
    return True, ""


class ArithmeticVerifier:
    """Exact final answer for `a+b`, plus step-level rationale consistency."""

    name, version = "arithmetic", "1"

    def check(self, prompt: str, completion: str, reference: str) -> Check:
        if not reference.strip():
            return Check(UNVERIFIABLE, 0.0, None, "no reference answer")
        found = _ANSWER.findall(completion)
        if not found:
            return Check(INCORRECT, 0.0, None, "no final answer")
        answer = found[-1]
        correct = int(answer) == int(reference)
        body = completion.rsplit("answer", 1)[0].strip().rstrip(";")
        steps = [s for s in body.split(";") if s.strip()]
        m = _PROMPT.search(prompt)
        if m:
            ok, why = rationale_consistent(int(m[1]), int(m[2]), steps, answer)
        else:
            ok, why = None, "prompt not in a+b form: steps not checked"
        if correct:
            return Check(CORRECT, 1.0, answer, why and f"right answer, {why}", ok)
        return Check(INCORRECT, 0.0, answer, f"answer {answer} != {reference}", ok)


VERIFIERS: dict[str, Callable[[], Verifier]] = {"arithmetic": ArithmeticVerifier}


def get_verifier(name: str) -> Verifier:
    try:
        return VERIFIERS[name]()
    except KeyError:
        raise ValueError(f"unknown verifier '{name}' (available: {sorted(VERIFIERS)})") from None


def verify(verifier: Verifier, prompts: pl.DataFrame, samples: pl.DataFrame) -> pl.DataFrame:
    """Judge every sample against its prompt's reference; returns a verdicts table."""
    refs = dict(zip(prompts["prompt_id"], prompts["reference"]))
    missing = set(samples["prompt_id"].unique()) - refs.keys()
    if missing:
        raise ValueError(f"{len(missing)} sample prompt_id(s) have no prompt row, e.g. {sorted(missing)[:3]}")
    rows = []
    for s in samples.select("round", "prompt_id", "sample_idx", "prompt", "completion").iter_rows(named=True):
        try:
            c = verifier.check(s["prompt"], s["completion"], refs[s["prompt_id"]])
        except Exception as exc:  # one bad row must not sink the round
            c = Check(UNVERIFIABLE, 0.0, None, f"verifier error: {type(exc).__name__}: {exc}")
        rows.append(
            {
                "round": s["round"],
                "prompt_id": s["prompt_id"],
                "sample_idx": s["sample_idx"],
                "verdict": c.verdict,
                "reward": c.reward,
                "extracted_answer": c.extracted_answer,
                "rationale_ok": c.rationale_ok,
                "reason": c.reason,
                "verifier": f"{verifier.name}@{verifier.version}",
            }
        )
    return schemas.validate(pl.DataFrame(rows, schema=schemas.VERDICTS_TABLE), "verdicts")
