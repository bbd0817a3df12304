"""The unit-conversion checker of docs/guides/bring-your-own-task.md.

    verification.verifier: checks.py:unit_match     (a file beside the config)

Right when the final answer (after '####', else the last quantity in the reply) is the
row's `value` in the row's `unit`, whatever the unit is called ("m", "meters", "metres").
The numeric built-in cannot say this: "#### 3000" or "#### 3000 cm" would pass it.
"""

from __future__ import annotations

import re

ALIASES = {
    "km": {"km", "kilometer", "kilometers", "kilometre", "kilometres"},
    "m": {"m", "meter", "meters", "metre", "metres"},
    "cm": {"cm", "centimeter", "centimeters", "centimetre", "centimetres"},
    "mm": {"mm", "millimeter", "millimeters", "millimetre", "millimetres"},
    "kg": {"kg", "kilogram", "kilograms", "kilo", "kilos"},
    "g": {"g", "gram", "grams"},
    "mg": {"mg", "milligram", "milligrams"},
    "L": {"l", "liter", "liters", "litre", "litres"},
    "mL": {"ml", "milliliter", "milliliters", "millilitre", "millilitres"},
    "h": {"h", "hr", "hrs", "hour", "hours"},
    "min": {"min", "mins", "minute", "minutes"},
    "s": {"s", "sec", "secs", "second", "seconds"},
}
CANONICAL = {alias: symbol for symbol, names in ALIASES.items() for alias in names}
QUANTITY = re.compile(r"(-?\d[\d,]*(?:\.\d+)?)\s*([A-Za-z]+)")


def final_quantity(completion: str) -> tuple[float, str] | None:
    """(number, unit symbol) of the answer: the first quantity after the last '####', else
    the last number followed by a unit word."""
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
