"""The column-wise verdicts and audit (filters/verifiers.verify with `check_frame`,
filters/audit._tells) against the row-by-row code they replace, on fuzzed text: the same
verdict, answer, reference, reason and tells for every row, whatever the engine (Python's `re`
row by row, Rust's regex in polars)."""

from __future__ import annotations

import random
import sys

import polars as pl
import pytest

from filters import audit as audit_module
from filters.numeric import PY_WHITESPACE
from filters.verifiers import NumericVerifier, verify
from selftaught.plugins import VERIFIERS

# Markers, numbers in every written form, Unicode digits and spaces, Python-only whitespace
# (\x1c), case folds ('ſ' is an 's' to both engines) and the regex metacharacters.
PIECES = [
    "####",
    "#### ",
    "\\boxed{",
    "}",
    "answer",
    "Answer is",
    "ANSWER IS:",
    "anſwer is",
    " is",
    "=",
    ":",
    " ",
    "\n",
    "\x1c",
    "\u00a0",
    "\u2009",
    "\t",
    "$",
    "-",
    ".",
    ",",
    "1",
    "23",
    "4,567",
    "0.5",
    ".5",
    "1,2,3",
    "٣",
    "٤٥",
    "x",
    "the",
    "12.",
    "-$3",
    "$ 7",
    "{",
    "5/2",
    "1e3",
    "(",
    "*",
    "+",
    "?",
    "[",
]
REFERENCES = ["5", "12", "0.5", "1,234", "", "  ", "abc", "-3", "٣", "$7", "4567", "1000", "2.50", "\x1c7"]


class RowsOnly:
    """The numeric verifier without `check_frame`: verify() then calls `check` per row."""

    def __init__(self):
        self.inner = NumericVerifier()
        self.name, self.version, self.plugin = self.inner.name, self.inner.version, VERIFIERS.get("numeric")

    def check(self, prompt, completion, reference):
        return self.inner.check(prompt, completion, reference)


def fuzzed(n: int, seed: int, pieces=PIECES) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = random.Random(seed)
    prompts = pl.DataFrame(
        {
            "prompt_id": [f"p{i}" for i in range(len(REFERENCES))],
            "reference": REFERENCES,
            "prompt": ["".join(rng.choice(pieces) for _ in range(8)) for _ in REFERENCES],
        }
    )
    rows = [
        (f"p{i % len(REFERENCES)}", i, "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))) for i in range(n)
    ]
    samples = pl.DataFrame(rows, schema=["prompt_id", "sample_idx", "completion"], orient="row")
    samples = samples.with_columns(pl.col("sample_idx").cast(pl.Int32), round=pl.lit("r001")).join(
        prompts.select("prompt_id", "prompt"), on="prompt_id", maintain_order="left"
    )
    return prompts, samples


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_check_frame_gives_the_verdicts_check_gives_row_by_row(seed):
    prompts, samples = fuzzed(6000, seed)
    verifier = NumericVerifier()
    verifier.plugin = VERIFIERS.get("numeric")
    by_column, by_row = verify(verifier, prompts, samples), verify(RowsOnly(), prompts, samples)
    assert by_column["verdict"].value_counts().height == 3  # the fuzz reaches every verdict
    assert by_column.equals(by_row)


def test_slices_of_a_large_table_are_judged_like_one(monkeypatch):
    prompts, samples = fuzzed(2500, 3)
    verifier = NumericVerifier()
    verifier.plugin = VERIFIERS.get("numeric")
    whole = verify(verifier, prompts, samples)
    monkeypatch.setattr("filters.verifiers.FRAME_ROWS", 700)
    assert verify(verifier, prompts, samples).equals(whole)


def test_a_check_frame_that_raises_makes_its_rows_unverifiable_not_incorrect():
    prompts, samples = fuzzed(50, 4)

    class Broken(RowsOnly):
        def check_frame(self, frame):
            raise RuntimeError("disk on fire")

    out = verify(Broken(), prompts, samples)
    assert out["verdict"].unique().to_list() == ["unverifiable"]
    assert out["reason"][0] == "verifier error: RuntimeError: disk on fire"


@pytest.mark.parametrize("grouped", [True, False])
def test_the_tells_by_regex_pass_equal_the_row_by_row_tells(grouped, monkeypatch):
    numbers = ["1", "12", "3.5", "٣", "7"]  # few distinct answers: one regex pass each
    pieces = [*numbers, " ", ".", "x", "\n", "answer", "(", "$", "\x1c", "+"]
    rng = random.Random(5)
    n = 3000
    df = pl.DataFrame(
        {
            "prompt": ["".join(rng.choice(pieces) for _ in range(6)) for _ in range(n)],
            "completion": ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 9))) for _ in range(n)],
            "extracted_answer": [rng.choice([*numbers, None, "", " 12\x1c", "(", "1+"]) for _ in range(n)],
        }
    )
    monkeypatch.setattr(audit_module, "DISTINCT_ANSWERS_PER_PASS", 50 if grouped else 10**9)
    got = audit_module._tells(df)
    answers = [(a or "").strip() for a in df["extracted_answer"]]
    want_restated = [audit_module._restated_row(a, p) for a, p in zip(answers, df["prompt"])]
    want_empty = [audit_module._empty_row(a, c) for a, c in zip(answers, df["completion"])]
    assert 0 < sum(want_restated) < n and 0 < sum(want_empty) < n
    assert got["restated"].to_list() == want_restated
    assert got["empty"].to_list() == want_empty


def test_python_whitespace_is_every_character_str_strip_removes():
    assert PY_WHITESPACE == "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
