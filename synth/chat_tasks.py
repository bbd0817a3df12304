"""Procedural tasks for real (pretrained, chat) models, asked in words.

Each task draws problems per difficulty level from a seeded generator, with a
numeric answer and a worked solution (the warm-start target). Prompts are
rendered with the model's chat template; the numeric verifier reads the final
answer (`#### <n>` when the model writes it, else the last number).

    list_max  "What is the largest number in this list: 43, 17, 88, 5?"   difficulty = list length
    addition  "What is 347 + 85?"                                         difficulty = digits
    story     "Tom has 5 marbles. Tom gets 3 more. ... How many ...?"     difficulty = steps

The levels were picked from measurements of SmolLM2-135M-Instruct (docs/real-models.md
and docs/results.md): tasks it solves sometimes greedily and more often in k samples.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from typing import Any

import polars as pl

from selftaught import schemas
from selftaught.plugins import Problem

ANSWER_FORMAT = " End your reply with the final answer on its own line as '#### <number>'."


def list_max(rng: random.Random, length: int) -> Problem:
    if length < 2:
        raise ValueError(f"list_max: a list needs 2 or more numbers, got level {length}")
    xs = rng.sample(range(1, 100), length)
    steps, best = [f"Start with {xs[0]}."], xs[0]
    for x in xs[1:]:
        if x > best:
            steps.append(f"{x} is larger, so now {x}.")
            best = x
        else:
            steps.append(f"{x} is smaller.")
    return Problem(
        f"What is the largest number in this list: {', '.join(map(str, xs))}?",
        best,
        " ".join(steps) + f" The largest number is {best}.\n#### {best}",
    )


def addition(rng: random.Random, digits: int) -> Problem:
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    a, b = rng.randint(lo, 10**digits - 1), rng.randint(lo, 10**digits - 1)
    da, db = str(a)[::-1], str(b)[::-1]
    steps, carry = [], 0
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        steps.append(
            f"{x} + {y}"
            + (f" + {carry}" if carry else "")
            + f" = {s}, write {s % 10}"
            + (", carry 1." if s >= 10 else ".")
        )
        carry = s // 10
    if carry:
        steps.append("Write the last carry 1.")
    return Problem(f"What is {a} + {b}?", a + b, " ".join(steps) + f" So {a} + {b} = {a + b}.\n#### {a + b}")


NAMES = ("Tom", "Ana", "Sam", "Lily", "Ben", "Maya", "Leo", "Zoe")
ITEMS = ("apples", "marbles", "stickers", "books", "coins", "cards", "shells", "pencils")


def story(rng: random.Random, steps: int) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    n = rng.randint(3, 12)
    text, work = [f"{name} has {n} {item}."], [f"{name} starts with {n}."]
    for _ in range(steps):
        if rng.random() < 0.5 or n < 3:
            k = rng.randint(2, 9)
            text.append(f"{name} gets {k} more.")
            work.append(f"{n} + {k} = {n + k}.")
            n += k
        else:
            k = rng.randint(1, n - 1)
            text.append(f"{name} gives away {k}.")
            work.append(f"{n} - {k} = {n - k}.")
            n -= k
    question = " ".join(text) + f" How many {item} does {name} have now?"
    return Problem(question, n, " ".join(work) + f"\n#### {n}")


GENERATORS: dict[str, Callable[[random.Random, int], Problem]] = {
    "list_max": list_max,
    "addition": addition,
    "story": story,
}


def make_problems(
    task: str,
    counts: dict[int, int],
    seed: int,
    render: Callable[[str], str],
    exclude: frozenset[str] | set[str] = frozenset(),
    split: str = "pool",
    round_key: str = "",
) -> pl.DataFrame:
    """`counts[d]` distinct problems of difficulty d of a built-in chat task (ids from the
    question text), none in `exclude`; `render` turns the question into the model's prompt."""
    return draw_problems(task, GENERATORS[task], counts, seed, render, ANSWER_FORMAT, exclude, split, round_key)


def as_problem(value: Any, task: str) -> Problem:
    """A generator's return value (a Problem, or a dict with question, answer and optionally
    solution and fields) as a Problem; a ValueError naming the task otherwise."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"question", "answer", "solution", "fields"})
        if unknown or "question" not in value or "answer" not in value:
            raise ValueError(
                f"task {task}: a problem is a dict with question, answer (and solution, fields); got "
                f"the keys {sorted(value)}"
            )
        value = Problem(value["question"], value["answer"], value.get("solution") or "", value.get("fields") or {})
    if not isinstance(value, Problem):
        raise ValueError(
            f"task {task}: the generator returned {type(value).__name__}, expected a "
            "selftaught.plugins.Problem or a dict"
        )
    if not isinstance(value.question, str) or not value.question.strip():
        raise ValueError(f"task {task}: a problem's question must be non-empty text, got {value.question!r}")
    if value.answer is None:
        raise ValueError(f"task {task}: the problem {value.question[:60]!r} has no answer")
    if not isinstance(value.fields, dict):
        raise ValueError(f"task {task}: a problem's fields must be a dict, got {type(value.fields).__name__}")
    return value


def reference_text(answer: Any) -> str:
    """The prompts table's reference: text as is, numbers as written, structures as JSON."""
    if isinstance(answer, str):
        return answer
    if isinstance(answer, (dict, list, tuple)):
        return json.dumps(answer, sort_keys=True)
    return str(answer)


def draw_problems(
    task: str,
    generate: Callable[[random.Random, int], Any],
    counts: dict[int, int],
    seed: int,
    render: Callable[[str], str],
    suffix: str = "",
    exclude: frozenset[str] | set[str] = frozenset(),
    split: str = "pool",
    round_key: str = "",
    with_fields: bool = False,
) -> pl.DataFrame:
    """`counts[d]` distinct problems of difficulty d from `generate(rng, d)` (ids from the question
    text), none in `exclude`; the prompt is `render(question + suffix)`. `with_fields` keeps each
    problem's question, answer and fields as JSON (what a user verifier reads)."""
    rows, seen = [], set(exclude)
    for level, n in sorted(counts.items()):
        rng = random.Random(f"{task}:{seed}:{level}")  # a level's problems do not depend on other levels
        made, tries = 0, 0
        while made < n:
            tries += 1
            if tries > 100 * n + 1000:
                raise ValueError(f"task {task}: ran out of distinct level-{level} problems after {made} of {n}")
            p = as_problem(generate(rng, level), task)
            pid = f"{task}-" + hashlib.sha1(p.question.encode()).hexdigest()[:12]
            if pid in seen:
                continue
            seen.add(pid)
            row = {
                "prompt_id": pid,
                "split": split,
                "round": round_key,
                "prompt": render(p.question + suffix),
                "reference": reference_text(p.answer),
                "target": p.solution,
                "difficulty": level,
            }
            if with_fields:
                row["fields"] = json.dumps(
                    {"question": p.question, "answer": p.answer, **p.fields}, sort_keys=True, default=str
                )
            rows.append(row)
            made += 1
    return schemas.validate(pl.DataFrame(rows, schema=schemas.PROMPTS), "prompts")
