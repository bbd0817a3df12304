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


def runnable_program(prompt: str, completion: str, ref: dict) -> str:
    """The program the sandbox runs for one sample: the extracted program, then an MBPP
    reference's setup code (which its tests need)."""
    program = extract_program(prompt, completion, ref)
    if ref["format"] == "mbpp" and ref.get("setup"):
        program = program + "\n" + ref["setup"] + "\n"
    return program


def reordered_tests(reference: str) -> str:
    """A code reference with its tests in reverse order: MBPP's assert list, or the asserts of
    HumanEval's check(candidate) (other statements keep their places). A program that passes
    only in the original order (state kept between tests, a test that patches another) fails."""
    import ast
    import json

    ref = parse_reference(reference)
    if ref["format"] == "mbpp":
        return code_reference("mbpp", ref["entry_point"], list(reversed(ref["tests"])), ref.get("setup", ""))
    tree = ast.parse(ref["tests"])
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            at = [i for i, stmt in enumerate(node.body) if isinstance(stmt, ast.Assert)]
            asserts = [node.body[i] for i in at]
            for i, stmt in zip(at, reversed(asserts)):
                node.body[i] = stmt
    return json.dumps({**ref, "tests": ast.unparse(tree)}, sort_keys=True)
