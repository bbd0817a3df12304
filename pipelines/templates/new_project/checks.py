"""$name's verifier: is the model's final answer the right number, in the right unit?

selftaught calls `unit_match` once per sample with the prompt, the completion, the
reference (the row's `value`, as text) and every other column of the task's row as
keyword arguments (here `value` and `unit`, from data/*.jsonl). It returns True
(correct), False (incorrect) or None (cannot tell: the sample is unverifiable, and a
round with too many of those stops), optionally with a reason:
`(False, "wrong unit")`. Edit it freely: its sha256 is part of every round's hash,
so the next `selftaught run` redoes the rounds it judged.
"""

from __future__ import annotations

import re

# What a unit may be called in an answer, by its canonical symbol (the rows' `unit`).
ALIASES = {
    "m": {"m", "meter", "meters", "metre", "metres"},
    "cm": {"cm", "centimeter", "centimeters", "centimetre", "centimetres"},
    "g": {"g", "gram", "grams"},
    "mL": {"ml", "milliliter", "milliliters", "millilitre", "millilitres"},
    "min": {"min", "mins", "minute", "minutes"},
    "s": {"s", "sec", "secs", "second", "seconds"},
}
CANONICAL = {alias: symbol for symbol, names in ALIASES.items() for alias in names}
QUANTITY = re.compile(r"(-?\d[\d,]*(?:\.\d+)?)\s*([A-Za-z]+)")


def final_quantity(completion: str) -> tuple[float, str] | None:
    """(number, unit symbol) of the answer: after the last '####' if there is one, else the
    last number followed by a unit word."""
    tail = completion.rsplit("####", 1)[1] if "####" in completion else completion
    found = [(n, CANONICAL.get(u.lower())) for n, u in QUANTITY.findall(tail)]
    found = [(n, u) for n, u in found if u is not None]
    if not found:
        return None
    number, unit = found[0] if "####" in completion else found[-1]
    return float(number.replace(",", "")), unit


def unit_match(prompt: str, completion: str, reference: str, *, value=None, unit=None, **row):
    if value is None or unit is None:
        return None, "the row has no value or unit"
    answer = final_quantity(completion)
    if answer is None:
        return False, "no number with a unit"
    number, said = answer
    if said != unit:
        return False, f"unit {said}, expected {unit}"
    if abs(number - float(value)) > 1e-9 * max(1.0, abs(float(value))):
        return False, f"{number:g} {said} is not the value"
    return True, "right value and unit"
