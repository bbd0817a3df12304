"""GSM8K-style final-answer extraction and exact numeric comparison, row by row (`extract_number`)
and over a whole column (`extract_numbers`, polars: the same patterns, the same answers)."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import polars as pl

_NUM = r"-?\$?\s*\d[\d,]*(?:\.\d+)?|-?\$?\s*\.\d+"
# How a final answer is found, in order of preference; the last match of the first marker that matches.
MARKERS = [
    ("####", r"####\s*(" + _NUM + r")"),
    ("boxed", r"\\boxed\{\s*(" + _NUM + r")\s*\}"),
    ("answer is", r"(?i)answer(?:\s+is)?\s*[:=]?\s*(" + _NUM + r")"),
]
_MARKERS = [re.compile(pattern) for _, pattern in MARKERS]
_ANY_NUMBER = re.compile(_NUM)
# Python's \s and str.strip() also take the separators \x1c-\x1f, which Rust's regex (polars) does not.
# (every c with c.isspace(); a test checks the list)
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _rust(pattern: str) -> str:
    """A pattern of this module as polars reads it, matching what Python's `re` matches."""
    return pattern.replace(r"\s", r"[\s\x1c-\x1f]")


def to_number(text: str) -> Fraction | None:
    """'1,234.50' / '$5' / '-3' / '.5' -> an exact Fraction; None when not a number."""
    cleaned = text.replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    if not cleaned or cleaned in {"-", "."}:
        return None
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def extract_number(completion: str) -> tuple[str | None, str]:
    """The final answer of a completion and how it was found ('####', boxed, 'answer is', last number)."""
    for (how, _), pattern in zip(MARKERS, _MARKERS):
        found = pattern.findall(completion)
        if found:
            return found[-1].strip(), how
    found = _ANY_NUMBER.findall(completion)
    if found:
        return found[-1].strip(), "last number"
    return None, "no number"


def extract_numbers(completion: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """`extract_number` over a column: (answer, how) expressions, answer null where none is
    found ('no number'). The last match of each marker is re-read for its group, because
    polars lists whole matches only."""
    answers, hows = [], []
    for how, pattern in MARKERS:
        last = completion.str.extract_all(_rust(pattern)).list.last()
        answers.append(last.str.extract(_rust(pattern), 1))
        hows.append(how)
    answers.append(completion.str.extract_all(_rust(_NUM)).list.last())
    hows.append("last number")
    answer = pl.coalesce(answers).str.strip_chars(PY_WHITESPACE)
    found_by: Any = pl.when(answers[0].is_not_null()).then(pl.lit(hows[0]))  # Then, then ChainedThen
    for a, h in zip(answers[1:], hows[1:]):
        found_by = found_by.when(a.is_not_null()).then(pl.lit(h))
    return answer, found_by.otherwise(pl.lit("no number"))


def numbers_as_text(values: pl.Series) -> pl.Series:
    """Each text's exact value as a canonical string (str of its Fraction: equal numbers, equal
    strings), null where it is no number; computed once per distinct text."""
    distinct = values.drop_nulls().unique()
    canon = {v: (None if (n := to_number(v)) is None else str(n)) for v in distinct.to_list()}
    return values.replace_strict(canon, default=None, return_dtype=pl.String)


def gsm8k_reference(answer_field: str) -> str:
    """GSM8K's reference: the number after '####'."""
    if "####" not in answer_field:
        raise ValueError(f"GSM8K answer has no '####' marker: {answer_field[-80:]!r}")
    return answer_field.rsplit("####", 1)[1].strip().replace(",", "")
