"""The built-in arithmetic task: integer addition with carry rationales.

`Q: 347+85=? A: 7+5+0=12:2; 4+8+1=13:32; 3+0+1=4:432; answer 432`
Each step writes digit + digit + carry-in = sum, then the running partial result.
Difficulty is the digit count of the larger operand.
"""

from __future__ import annotations

import hashlib
import random

import polars as pl

from selftaught import schemas


def prompt_text(a: int, b: int) -> str:
    return f"Q: {a}+{b}=? A:"


def rationale(a: int, b: int) -> str:
    """The worked solution (the completion a perfect policy writes)."""
    da, db = str(a)[::-1], str(b)[::-1]
    steps, carry, partial = [], 0, ""
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        partial = str(s % 10) + partial
        steps.append(f"{x}+{y}+{carry}={s}:{partial}")
        carry = s // 10
    if carry:
        partial = "1" + partial
        steps.append(f"0+0+1=1:{partial}")
    return " " + "; ".join(steps) + f"; answer {a + b}"


def prompt_id(a: int, b: int) -> str:
    return "add-" + hashlib.sha1(f"{a}+{b}".encode()).hexdigest()[:12]


def _draw(rng: random.Random, digits: int) -> tuple[int, int]:
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    a = rng.randint(lo, 10**digits - 1)
    b = rng.randint(0, 10**digits - 1)  # the second operand may be shorter
    return (a, b) if rng.random() < 0.5 else (b, a)


def make_problems(
    counts: dict[int, int],
    seed: int,
    exclude: frozenset[str] | set[str] = frozenset(),
    split: str = "pool",
    round_key: str = "",
) -> pl.DataFrame:
    """Draw `counts[d]` distinct problems of d digits, none of whose ids is in `exclude`."""
    rng = random.Random(seed)
    rows, seen = [], set(exclude)
    for digits, n in sorted(counts.items()):
        capacity = 10 ** (2 * digits) - (10 ** (2 * digits - 2) if digits > 1 else 0)
        if n > capacity // 2:
            raise ValueError(f"cannot draw {n} distinct {digits}-digit problems (at most {capacity // 2})")
        made, tries = 0, 0
        while made < n:
            tries += 1
            if tries > 100 * n + 1000:
                raise ValueError(f"ran out of unused {digits}-digit problems after {made} of {n}")
            a, b = _draw(rng, digits)
            if max(len(str(a)), len(str(b))) != digits:
                continue
            pid = prompt_id(a, b)
            if pid in seen:
                continue
            seen.add(pid)
            rows.append(
                {
                    "prompt_id": pid,
                    "split": split,
                    "round": round_key,
                    "prompt": prompt_text(a, b),
                    "reference": str(a + b),
                    "target": rationale(a, b),
                    "difficulty": digits,
                }
            )
            made += 1
    return schemas.validate(pl.DataFrame(rows, schema=schemas.PROMPTS), "prompts")
