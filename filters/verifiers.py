"""Verifiers: turn (prompt, completion, reference) into a three-valued verdict.

A verifier error on one row gives that row `unverifiable` with the error as the
reason; it never silently becomes `incorrect` (a whole batch scored 0 that way
in a peer project).

The built-ins register here with their capabilities (selftaught.plugins.VerifierCaps);
`get_verifier` builds any registered, installed or user verifier from the config, user
code through filters.plugin_verifier. A verifier with a second opinion for the audit
(filters/audit.py) has a `second_opinion(correct)` method returning the correct rows it
disagrees with. A verifier with a `check_frame(table)` method judges a whole table at once
(polars expressions, no Python call per row): verify() hands it the samples in slices of
FRAME_ROWS, and it must give the verdicts its `check` gives, row for row.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Protocol, cast

import polars as pl

from filters.numeric import extract_number, extract_numbers, numbers_as_text, to_number
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

    def tells(self, correct: pl.DataFrame) -> dict[str, float]:
        """The reward-hacking tell of this extractor: the answer found only as the last number."""
        fallback = correct["reason"].fill_null("").str.contains("last number", literal=True)
        return {"tell_last_number_fallback": int(fallback.sum()) / max(fallback.len(), 1)}

    def check_frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`check` over a table (completion, reference): the answers found by polars with the
        same patterns, each distinct reference and answer turned into a number once."""
        refs = frame["reference"]
        want_of = {r: (None if not r.strip() or (n := to_number(r)) is None else str(n)) for r in refs.unique()}
        not_a_number = {r: f"reference {r[:40]!r} is not a number" for r, w in want_of.items() if w is None}
        answer, how = extract_numbers(pl.col("completion"))
        df = frame.select("reference", answer.alias("answer"), how.alias("how"))
        df = df.with_columns(
            want=refs.replace_strict(want_of, default=None, return_dtype=pl.String),
            got=numbers_as_text(df["answer"]),
        )
        want, got = pl.col("want"), pl.col("got")
        verdict = (
            pl.when(want.is_null())
            .then(pl.lit(UNVERIFIABLE))
            .when(got.is_not_null() & (got == want))
            .then(pl.lit(CORRECT))
            .otherwise(pl.lit(INCORRECT))
        )
        reason = (
            pl.when(want.is_null())
            .then(pl.col("reference").replace_strict(not_a_number, default=None, return_dtype=pl.String))
            .when(got.is_null())
            .then(pl.lit("no final number"))
            .when(got == want)
            .then(pl.lit("found by ") + pl.col("how"))
            .otherwise(pl.concat_str("answer", pl.lit(" != "), "reference", pl.lit(" (found by "), "how", pl.lit(")")))
        )
        return df.select(
            verdict.alias("verdict"),
            pl.when(verdict == CORRECT).then(1.0).otherwise(0.0).alias("reward"),
            pl.when(want.is_not_null() & got.is_not_null()).then(pl.col("answer")).alias("extracted_answer"),
            want.alias("parsed_reference"),
            pl.lit(None, pl.Boolean).alias("rationale_ok"),
            reason.alias("reason"),
            pl.lit(None, pl.String).alias("details"),
        )

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


FRAME_ROWS = 200_000  # samples a check_frame verifier judges at once: bounds its temporaries' memory


def verify(verifier: Verifier, prompts: pl.DataFrame, samples: pl.DataFrame) -> pl.DataFrame:
    """Judge every sample against its prompt's reference; returns a verdicts table. A verifier
    that reads rows (user code) also gets each prompt's `fields`: every column of its task row."""
    refs = prompts.select("prompt_id", pl.col("reference").fill_null("")).unique("prompt_id", keep="last")
    missing = samples.join(refs, on="prompt_id", how="anti")["prompt_id"].unique().sort()
    if missing.len():
        raise ValueError(f"{missing.len()} sample prompt_id(s) have no prompt row, e.g. {missing.head(3).to_list()}")
    table = samples.select("round", "prompt_id", "sample_idx", "prompt", "completion").join(
        refs, on="prompt_id", how="left", maintain_order="left"
    )  # a null reference is "" (the prompts table's "none")
    stage = f"{table['round'][0]} verify" if table.height else "verify"
    progress = Progress(stage, table.height, "samples", every=1.0)
    if hasattr(verifier, "check_frame") and not getattr(verifier, "reads_rows", False):
        judged = _frame_checks(cast(Any, verifier), table, progress)
    else:
        fields = (
            dict(zip(prompts["prompt_id"], prompts["fields"]))
            if getattr(verifier, "reads_rows", False) and "fields" in prompts.columns
            else None
        )
        checks = _checks(verifier, table, progress, fields)
        judged = pl.DataFrame(
            {
                "verdict": [c.verdict for c in checks],
                "reward": [c.reward for c in checks],
                "extracted_answer": [c.extracted_answer for c in checks],
                "parsed_reference": [c.parsed_reference for c in checks],
                "rationale_ok": [c.rationale_ok for c in checks],
                "reason": [c.reason for c in checks],
                "details": [c.details for c in checks],
            },
            schema={k: schemas.VERDICTS_TABLE[k] for k in _CHECK_COLUMNS},
        )
    out = pl.concat([table.select("round", "prompt_id", "sample_idx"), judged], how="horizontal")
    out = out.with_columns(pl.lit(f"{verifier.name}@{verifier.version}").alias("verifier"))
    return schemas.validate(out.select(list(schemas.VERDICTS_TABLE)), "verdicts")  # validate casts


_CHECK_COLUMNS = ("verdict", "reward", "extracted_answer", "parsed_reference", "rationale_ok", "reason", "details")


def _frame_checks(verifier, table: pl.DataFrame, progress: Progress) -> pl.DataFrame:
    """check_frame over `table` in slices of FRAME_ROWS; a slice whose check raises is unverifiable."""
    parts = []
    for start in range(0, max(table.height, 1), FRAME_ROWS):
        part = table.slice(start, FRAME_ROWS)
        try:
            got = verifier.check_frame(part.select("prompt", "completion", "reference")).select(_CHECK_COLUMNS)
        except Exception as exc:  # a broken batch is unverifiable, row by row, never incorrect
            error = f"verifier error: {type(exc).__name__}: {exc}"
            got = part.with_columns(
                pl.lit(UNVERIFIABLE).alias("verdict"),
                pl.lit(0.0).alias("reward"),
                *(pl.lit(None).alias(k) for k in ("extracted_answer", "parsed_reference", "rationale_ok")),
                pl.lit(error).alias("reason"),
                pl.lit(None).alias("details"),
            ).select(_CHECK_COLUMNS)
        if got.height != part.height:
            raise ValueError(f"{verifier.name}.check_frame returned {got.height} rows for {part.height}")
        parts.append(got.cast({k: schemas.VERDICTS_TABLE[k] for k in _CHECK_COLUMNS}))
        progress(start + part.height)
    return pl.concat(parts)


def _checks(
    verifier: Verifier,
    table: pl.DataFrame,
    progress: Progress,
    fields: dict[str, str | None] | None = None,
) -> list[Check]:
    prompts, completions = table["prompt"].to_list(), table["completion"].to_list()
    references, prompt_ids = table["reference"].to_list(), table["prompt_id"].to_list()
    if getattr(verifier, "reads_rows", False):  # user code: its own batching, timeouts and error rows
        return cast(Any, verifier).check_batch(  # a PluginVerifier
            prompts,
            completions,
            references,
            prompt_ids,
            rows=[(fields or {}).get(p) for p in prompt_ids],
            progress=progress,
        )
    if hasattr(verifier, "check_batch"):
        try:
            return verifier.check_batch(prompts, completions, references, prompt_ids)
        except Exception as exc:  # a broken batch is unverifiable, row by row, never incorrect
            return [Check(UNVERIFIABLE, 0.0, None, f"verifier error: {type(exc).__name__}: {exc}")] * len(prompts)
        finally:
            progress(len(prompts))
    out = []
    for prompt, completion, reference in zip(prompts, completions, references):
        try:
            out.append(verifier.check(prompt, completion, reference))
        except Exception as exc:  # one bad row must not sink the round
            out.append(Check(UNVERIFIABLE, 0.0, None, f"verifier error: {type(exc).__name__}: {exc}"))
        progress(len(out))
    return out
