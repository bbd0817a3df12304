"""Code tasks: the reference format and turning a model's output into a program.

A code prompt's `reference` is JSON: {"format": "humaneval" | "mbpp", "entry_point",
"tests", "setup"}. HumanEval `tests` is the source defining check(candidate); MBPP
`tests` is a list of assert statements, `setup` optional code run before them.
"""

from __future__ import annotations

import json
import re

FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
STOPS = ("\nif __name__", "\nprint(", "\nassert ", "\n```")


def code_reference(fmt: str, entry_point: str, tests, setup: str = "") -> str:
    return json.dumps({"format": fmt, "entry_point": entry_point, "tests": tests, "setup": setup}, sort_keys=True)


def parse_reference(reference: str) -> dict:
    try:
        ref = json.loads(reference)
        if ref["format"] not in ("humaneval", "mbpp") or not ref["entry_point"]:
            raise ValueError(f"format {ref['format']!r}, entry point {ref['entry_point']!r}")
        return ref
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a code reference ({exc}): {reference[:80]!r}") from None


def defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def _cut(text: str) -> str:
    cuts = [text.find(s) for s in STOPS if s in text]
    return text[: min(cuts)] if cuts else text


def _header(prompt: str) -> str:
    """The prompt's import lines: a full function written from scratch still needs them."""
    return "".join(line + "\n" for line in prompt.splitlines() if re.match(r"^(import|from)\s+\w", line))


def extract_program(prompt: str, completion: str, ref: dict) -> str:
    """The program to run for one sample.

    - fenced blocks: the last one that defines the entry point, else the last one;
    - bare code that defines the entry point: used as is (after the prompt's imports);
    - otherwise a continuation of the prompt's function (HumanEval style): prompt + completion.
    Trailing demo code (`if __name__`, prints, asserts) is cut off.
    """
    entry = ref["entry_point"]
    blocks = FENCE.findall(completion)
    if blocks:
        chosen = next((b for b in reversed(blocks) if defines(b, entry)), blocks[-1])
        code = _cut("\n" + chosen).lstrip("\n")
    else:
        code = _cut(completion)
    if defines(code, entry):
        return _header(prompt) + code
    if ref["format"] == "humaneval" and defines(prompt, entry):
        return prompt + code
    return code
