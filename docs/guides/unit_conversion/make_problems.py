"""Writes problems.jsonl: unit conversions in three levels, with structured answers.

    python docs/guides/unit_conversion/make_problems.py

Each row: id, question, value (the number), unit (its symbol), difficulty, solution (a
worked answer, for the warm start). Level 1 converts a whole number to a smaller unit
(3 km -> 3000 m), level 2 back to the larger unit (3000 m -> 3 km), level 3 a decimal
(2.5 km -> 2500 m).
"""

import json
from pathlib import Path

CONVERSIONS = [  # (larger unit, smaller unit, factor, their names)
    ("km", "m", 1000, "kilometers", "meters"),
    ("m", "cm", 100, "meters", "centimeters"),
    ("cm", "mm", 10, "centimeters", "millimeters"),
    ("kg", "g", 1000, "kilograms", "grams"),
    ("g", "mg", 1000, "grams", "milligrams"),
    ("L", "mL", 1000, "liters", "milliliters"),
    ("h", "min", 60, "hours", "minutes"),
    ("min", "s", 60, "minutes", "seconds"),
]


def number(x: float) -> str:
    return f"{x:g}"


def rows() -> list[dict]:
    out = []
    for big, small, factor, big_name, small_name in CONVERSIONS:
        for x in range(2, 31):  # level 1: down, whole numbers
            out.append(
                (
                    1,
                    f"Convert {x} {big_name} to {small_name}.",
                    x * factor,
                    small,
                    f"1 {big} = {factor} {small}, so {x} {big} = {x} x {factor} = {x * factor} {small}.",
                )
            )
        for x in range(2, 31):  # level 2: up
            out.append(
                (
                    2,
                    f"Convert {x * factor} {small_name} to {big_name}.",
                    x,
                    big,
                    f"{factor} {small} = 1 {big}, so {x * factor} {small} = {x * factor} / {factor} = {x} {big}.",
                )
            )
        for x in [k + 0.5 for k in range(1, 20)]:  # level 3: down, decimals
            value = x * factor
            out.append(
                (
                    3,
                    f"Convert {number(x)} {big_name} to {small_name}.",
                    value,
                    small,
                    f"1 {big} = {factor} {small}, so {number(x)} {big} = {number(x)} x {factor} = "
                    f"{number(value)} {small}.",
                )
            )
    return [
        {
            "id": f"u{i:04d}",
            "question": q,
            "value": v,
            "unit": u,
            "difficulty": d,
            "solution": f"{s}\n#### {number(v)} {u}",
        }
        for i, (d, q, v, u, s) in enumerate(out, 1)
    ]


if __name__ == "__main__":
    path = Path(__file__).with_name("problems.jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows()), encoding="utf-8")
    print(f"{path}: {len(rows())} rows")
