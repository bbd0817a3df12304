"""Verifiers: turn (prompt, completion, reference) into a three-valued verdict.

A verifier error on one row gives that row `unverifiable` with the error as the
reason; it never silently becomes `incorrect` (a whole batch scored 0 that way
in a peer project).

The built-ins register here with their capabilities (selftaught.plugins.VerifierCaps);
`get_verifier` builds any registered, installed or user verifier from the config, user
code through filters.plugin_verifier. A verifier with a second opinion for the audit
(filters/audit.py) has a `second_opinion(correct)` method returning the correct rows it
disagrees with.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Protocol, cast

import polars as pl

from filters.numeric import extract_number, to_number
from selftaught import schemas
from selftaught.plugins import VERIFIERS as REGISTRY
from selftaught.plugins import Check, Plugin
from selftaught.progress import Progress
from selftaught.schemas import CORRECT, INCORRECT, UNVERIFIABLE

__all__ = ["Check", "Verifier", "get_verifier", "build_verifier", "verify"]


class Verifier(Protocol):
    name: str
    version: str
    plugin: Plugin  # set by build_verifier: capabilities and origin

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


@REGISTRY.register("arithmetic", checks_steps=True, second_opinion="step check")
class ArithmeticVerifier:
    """Exact final answer for `a+b`, plus step-level rationale consistency."""

    name, version = "arithmetic", "1"

    def second_opinion(self, correct: pl.DataFrame) -> pl.DataFrame:
        """The step check against the answer check: a right answer whose steps are wrong."""
        bad = correct.filter(pl.col("rationale_ok") == False)  # noqa: E712 (a null is "not checked")
        return bad.with_columns(pl.lit("steps wrong").alias("second_verdict"))

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
            return Check(CORRECT, 1.0, answer, why and f"right answer, {why}", ok, reference)
        return Check(INCORRECT, 0.0, answer, f"answer {answer} != {reference}", ok, reference)


@REGISTRY.register("numeric", second_opinion="math-verify")
class NumericVerifier:
    """GSM8K: the final number ('####', boxed, 'answer is', else the last number) equals the reference."""

    name, version = "numeric", "1"

    def second_opinion(self, correct: pl.DataFrame) -> pl.DataFrame:
        """math-verify on the same completion and reference."""
        from filters.mathverify import check_many

        out = check_many(list(zip(correct["completion"], correct["reference"]))) if correct.height else []
        judged = correct.with_columns(
            pl.Series("second_verdict", [o[0] for o in out], pl.String),
            pl.Series("second_reason", [o[3] for o in out], pl.String),
        )
        return judged.filter(pl.col("second_verdict") != CORRECT).with_columns(pl.col("second_reason").alias("reason"))

    def tells(self, rows: list[dict]) -> dict[str, float]:
        """The reward-hacking tell of this extractor: the answer found only as the last number."""
        return {"tell_last_number_fallback": sum("last number" in (r["reason"] or "") for r in rows) / len(rows)}

    def check(self, prompt: str, completion: str, reference: str) -> Check:
        want = to_number(reference) if reference.strip() else None
        if want is None:
            return Check(UNVERIFIABLE, 0.0, None, f"reference {reference[:40]!r} is not a number")
        answer, how = extract_number(completion)
        got = to_number(answer) if answer else None
        ref = str(want)
        if got is None:
            return Check(INCORRECT, 0.0, None, "no final number", parsed_reference=ref)
        if got == want:
            return Check(CORRECT, 1.0, answer, f"found by {how}", parsed_reference=ref)
        return Check(INCORRECT, 0.0, answer, f"{answer} != {reference} (found by {how})", parsed_reference=ref)


@REGISTRY.register("math")
class MathVerifier:
    """Equivalence with math-verify in worker processes; timeouts are unverifiable. No second
    opinion: math-verify is the verifier, and the numeric extractor reads no LaTeX."""

    name, version = "math", "math-verify-1"

    def __init__(self, timeout: int = 5, workers: int | None = None):
        self.timeout, self.workers = timeout, workers

    @classmethod
    def from_config(cls, v) -> MathVerifier:
        return cls(v.timeout_seconds, v.workers)

    def check(self, prompt: str, completion: str, reference: str) -> Check:
        return self.check_batch([prompt], [completion], [reference], ["-"])[0]

    def check_batch(self, prompts, completions, references, prompt_ids) -> list[Check]:
        from filters.mathverify import check_many

        out = check_many(list(zip(completions, references)), workers=self.workers, timeout=self.timeout)
        return [
            Check(v, 1.0 if v == CORRECT else 0.0, ans, reason, parsed_reference=ref) for v, ans, ref, reason in out
        ]


@REGISTRY.register("majority", needs_reference=False, groups=True, pseudo_labels=True)
class MajorityVerifier:
    """Label-free self-consistency: per prompt, the most common answer is the pseudo-label.

    Samples agreeing with it are correct (reward = its vote share). References are
    never read. Ties, and shares under `min_share`, make the prompt unverifiable.
    """

    name, version = "majority", "1"

    def __init__(self, answer: str = "numeric", min_share: float = 0.0, break_ties: bool = False):
        self.answer, self.min_share, self.break_ties = answer, min_share, break_ties

    @classmethod
    def from_config(cls, v) -> MajorityVerifier:
        return cls(v.majority_answer, v.majority_min_share, v.majority_break_ties)

    def _extract(self, completion: str) -> str | None:
        if self.answer == "numeric":
            text, _ = extract_number(completion)
            number = to_number(text) if text else None
            return None if number is None else str(number)
        from filters.mathverify import boxed_answer

        return boxed_answer(completion)

    def check(self, prompt: str, completion: str, reference: str) -> Check:
        raise TypeError("majority vote needs all samples of a prompt: use check_batch")

    def check_batch(self, prompts, completions, references, prompt_ids) -> list[Check]:
        answers = [self._extract(c) for c in completions]
        groups: dict[str, list[int]] = {}
        for i, pid in enumerate(prompt_ids):
            groups.setdefault(pid, []).append(i)
        out: list[Check | None] = [None] * len(completions)
        for idx in groups.values():
            votes = Counter(answers[i] for i in idx if answers[i] is not None)
            label, why = self._label(votes, len(idx))
            for i in idx:
                a = answers[i]
                if label is None:
                    out[i] = Check(UNVERIFIABLE, 0.0, a, why)
                elif a == label:
                    out[i] = Check(CORRECT, votes[label] / len(idx), a, why, parsed_reference=label)
                else:
                    out[i] = Check(
                        INCORRECT, 0.0, a, why if a is not None else f"no answer; {why}", parsed_reference=label
                    )
        return cast(list[Check], out)  # every sample is in one group

    def _label(self, votes: Counter, n: int) -> tuple[str | None, str]:
        if not votes:
            return None, "no sample has an answer"
        ranked = votes.most_common()
        top, count = ranked[0]
        tied = sorted(a for a, c in ranked if c == count)
        if len(tied) > 1:
            if not self.break_ties:
                return None, f"tie between {tied[:4]} ({count}/{n} each)"
            top = tied[0]
        share = count / n
        if share < self.min_share:
            return None, f"pseudo-label {top} has share {share:.2f} < {self.min_share}"
        return top, f"pseudo-label {top} (share {share:.2f})"


@REGISTRY.register("sandbox", feedback="reason", second_opinion="sandbox re-run, tests reversed")
class SandboxVerifier:
    """Code: run the extracted program against the reference tests in the sandbox.

    All tests pass -> correct. A failing test, an exception, a timeout, a crash or
    runaway output -> incorrect, with the reason. The sandbox itself failing ->
    unverifiable. Per-test results and timings go to `details`.
    """

    name, version = "sandbox", "1"

    def __init__(self, limits=None, workers: int | None = None):
        from filters.sandbox import Limits

        self.limits, self.workers = limits or Limits(), workers

    @classmethod
    def from_config(cls, v) -> SandboxVerifier:
        from filters.sandbox import limits_from_config

        return cls(limits_from_config(v.sandbox), v.sandbox.workers)

    def second_opinion(self, correct: pl.DataFrame) -> pl.DataFrame:
        """A re-run in a fresh sandbox with the tests in reverse order (default limits)."""
        from filters.code import reordered_tests

        refs = [reordered_tests(r) for r in correct["reference"]]
        out = (
            SandboxVerifier().check_batch(
                correct["prompt"].to_list(), correct["completion"].to_list(), refs, correct["prompt_id"].to_list()
            )
            if correct.height
            else []
        )
        judged = correct.with_columns(
            pl.Series("second_verdict", [c.verdict for c in out], pl.String),
            pl.Series("second_reason", [c.reason for c in out], pl.String),
        )
        return judged.filter(pl.col("second_verdict") != CORRECT).with_columns(pl.col("second_reason").alias("reason"))

    def check(self, prompt: str, completion: str, reference: str) -> Check:
        return self.check_batch([prompt], [completion], [reference], ["-"])[0]

    def check_batch(self, prompts, completions, references, prompt_ids) -> list[Check]:
        import json

        from filters.code import parse_reference, runnable_program
        from filters.sandbox import run_many

        jobs = []
        out: list[Check | None] = [None] * len(completions)
        for i, (p, c, r) in enumerate(zip(prompts, completions, references)):
            try:
                ref = parse_reference(r)
            except ValueError as exc:
                out[i] = Check(UNVERIFIABLE, 0.0, None, str(exc))
                continue
            jobs.append((i, runnable_program(p, c, ref), ref))
        results = run_many(
            [
                {"program": prog, "tests": ref["tests"], "entry_point": ref["entry_point"], "fmt": ref["format"]}
                for _, prog, ref in jobs
            ],
            self.workers,
            self.limits,
        )
        for (i, program, ref), res in zip(jobs, results):
            details = json.dumps(
                {
                    "status": res.status,
                    "seconds": res.seconds,
                    "modes": res.modes,
                    "tests": [t.__dict__ for t in res.tests],
                }
            )
            verdict = CORRECT if res.passed else UNVERIFIABLE if res.status == "sandbox_error" else INCORRECT
            out[i] = Check(
                verdict,
                1.0 if res.passed else 0.0,
                program[-4000:],
                f"{res.status}: {res.reason}",
                parsed_reference=ref["entry_point"],
                details=details,
            )
        return cast(list[Check], out)  # each sample is checked or unverifiable


_WORD_SPLIT = re.compile(r"\s+")
_FINAL = re.compile(r"####\s*(.+)")


def normalize_answer(text: str) -> str:
    """Case, surrounding quotes and punctuation, and runs of whitespace do not count."""
    text = _WORD_SPLIT.sub(" ", text.strip()).casefold()
    return text.strip(" \"'`.,;:!")


def final_answer(completion: str) -> str | None:
    """The text after the last '####' (the chat tasks' answer line), else the last non-empty line."""
    found = _FINAL.findall(completion)
    if found:
        return found[-1].strip()
    lines = [line for line in completion.splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


@REGISTRY.register("exact_match")
class ExactVerifier:
    """The final answer ('#### <answer>', else the last line) equals the reference, ignoring
    case, surrounding punctuation and whitespace: the dataset task's default."""

    name, version = "exact_match", "1"

    def check(self, prompt: str, completion: str, reference: str) -> Check:
        want = normalize_answer(reference)
        if not want:
            return Check(UNVERIFIABLE, 0.0, None, "no reference answer")
        answer = final_answer(completion)
        if answer is None:
            return Check(INCORRECT, 0.0, None, "no answer", parsed_reference=want)
        if normalize_answer(answer) == want:
            return Check(CORRECT, 1.0, answer, "exact match", parsed_reference=want)
        return Check(INCORRECT, 0.0, answer, f"{answer[:60]!r} != {reference[:60]!r}", parsed_reference=want)


def build_verifier(plugin: Plugin, settings=None) -> Verifier:
    """A verifier object for a registry entry; `settings` is a `VerificationConfig` (timeouts,
    majority options, the plugin section for user code)."""
    if not plugin.builtin:
        from filters.plugin_verifier import PluginVerifier

        return PluginVerifier(plugin, settings)
    cls = plugin.obj
    verifier = cls.from_config(settings) if settings is not None and hasattr(cls, "from_config") else cls()
    verifier.plugin = plugin
    return verifier


def get_verifier(name: str, settings=None, base_dir=None) -> Verifier:
    """A verifier by name, entry point or path (selftaught.plugins); `settings` is a
    `VerificationConfig`."""
    return build_verifier(REGISTRY.get(name, base_dir), settings)


def verify(verifier: Verifier, prompts: pl.DataFrame, samples: pl.DataFrame) -> pl.DataFrame:
    """Judge every sample against its prompt's reference; returns a verdicts table. A verifier
    that reads rows (user code) also gets each prompt's `fields`: every column of its task row."""
    refs = dict(zip(prompts["prompt_id"], prompts["reference"]))
    missing = set(samples["prompt_id"].unique()) - refs.keys()
    if missing:
        raise ValueError(f"{len(missing)} sample prompt_id(s) have no prompt row, e.g. {sorted(missing)[:3]}")
    fields = (
        dict(zip(prompts["prompt_id"], prompts["fields"]))
        if getattr(verifier, "reads_rows", False) and "fields" in prompts.columns
        else None
    )
    rows = []
    items = samples.select("round", "prompt_id", "sample_idx", "prompt", "completion").to_dicts()
    stage = f"{items[0]['round']} verify" if items else "verify"
    progress = Progress(stage, len(items), "samples", every=1.0)
    for s, c in zip(items, _checks(verifier, items, refs, progress, fields)):
        rows.append(
            {
                "round": s["round"],
                "prompt_id": s["prompt_id"],
                "sample_idx": s["sample_idx"],
                "verdict": c.verdict,
                "reward": c.reward,
                "extracted_answer": c.extracted_answer,
                "parsed_reference": c.parsed_reference,
                "rationale_ok": c.rationale_ok,
                "reason": c.reason,
                "verifier": f"{verifier.name}@{verifier.version}",
                "details": c.details,
            }
        )
    return schemas.validate(pl.DataFrame(rows, schema=schemas.VERDICTS_TABLE), "verdicts")


def _checks(
    verifier: Verifier,
    items: list[dict],
    refs: dict[str, str],
    progress: Progress,
    fields: dict[str, str | None] | None = None,
) -> list[Check]:
    if getattr(verifier, "reads_rows", False):  # user code: its own batching, timeouts and error rows
        return cast(Any, verifier).check_batch(  # a PluginVerifier
            [s["prompt"] for s in items],
            [s["completion"] for s in items],
            [refs[s["prompt_id"]] for s in items],
            [s["prompt_id"] for s in items],
            rows=[(fields or {}).get(s["prompt_id"]) for s in items],
            progress=progress,
        )
    if hasattr(verifier, "check_batch"):
        try:
            return verifier.check_batch(
                [s["prompt"] for s in items],
                [s["completion"] for s in items],
                [refs[s["prompt_id"]] for s in items],
                [s["prompt_id"] for s in items],
            )
        except Exception as exc:  # a broken batch is unverifiable, row by row, never incorrect
            return [Check(UNVERIFIABLE, 0.0, None, f"verifier error: {type(exc).__name__}: {exc}")] * len(items)
        finally:
            progress(len(items))
    out = []
    for s in items:
        try:
            out.append(verifier.check(s["prompt"], s["completion"], refs[s["prompt_id"]]))
        except Exception as exc:  # one bad row must not sink the round
            out.append(Check(UNVERIFIABLE, 0.0, None, f"verifier error: {type(exc).__name__}: {exc}"))
        progress(len(out))
    return out
