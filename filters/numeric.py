"""GSM8K-style final-answer extraction and exact numeric comparison."""

from __future__ import annotations

import re
from fractions import Fraction

_NUM = r"-?\$?\s*\d[\d,]*(?:\.\d+)?|-?\$?\s*\.\d+"
_MARKERS = [
    re.compile(r"####\s*(" + _NUM + r")"),
    re.compile(r"\\boxed\{\s*(" + _NUM + r")\s*\}"),
    re.compile(r"answer(?:\s+is)?\s*[:=]?\s*(" + _NUM + r")", re.IGNORECASE),
]
_ANY_NUMBER = re.compile(_NUM)


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
    for how, pattern in zip(("####", "boxed", "answer is"), _MARKERS):
        found = pattern.findall(completion)
        if found:
            return found[-1].strip(), how
    found = _ANY_NUMBER.findall(completion)
    if found:
        return found[-1].strip(), "last number"
    return None, "no number"


def gsm8k_reference(answer_field: str) -> str:
    """GSM8K's reference: the number after '####'."""
    if "####" not in answer_field:
        raise ValueError(f"GSM8K answer has no '####' marker: {answer_field[-80:]!r}")
    return answer_field.rsplit("####", 1)[1].strip().replace(",", "")
