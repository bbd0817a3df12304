"""Code tasks: HumanEval / MBPP rows, extracting programs from model output, and the sandbox
verifier on real samples. (A code round through Dagster: tests/e2e/test_code_round.py.)"""

import json

import polars as pl
import pytest

from filters.code import extract_program, parse_reference
from filters.verifiers import SandboxVerifier, get_verifier, verify
from selftaught import schemas
from selftaught.config import TaskConfig, parse_config
from synth.sources import SourceError
from synth.tasks import make_task
from tests.helpers import ROOT, TESTS

HUMANEVAL = str(ROOT / "data" / "humaneval" / "HumanEval.jsonl.gz")


MBPP = str(TESTS / "data" / "mbpp_tiny.jsonl")


HE_REF = {"format": "humaneval", "entry_point": "add"}


PROMPT = 'from typing import List\n\n\ndef add(a: int, b: int) -> int:\n    """Add."""\n'


@pytest.mark.parametrize(
    "completion,expected",
    [
        ("    return a + b\n", PROMPT + "    return a + b\n"),  # continuation of the prompt
        ("    return a + b\n\nif __name__ == '__main__':\n    print(add(1, 2))\n", PROMPT + "    return a + b\n"),
        (
            "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.",
            "from typing import List\ndef add(a, b):\n    return a + b\n",
        ),
        (
            "```py\ndef helper():\n    pass\n```\n```python\ndef add(a, b):\n    return b + a\n```\n```python\nprint(1)\n```",
            "from typing import List\ndef add(a, b):\n    return b + a\n",
        ),
        (
            "```python\ndef add(a, b):\n    return a - b",
            "from typing import List\ndef add(a, b):\n    return a - b",
        ),  # cut off
        (
            "def add(a, b):\n    return a * b\nassert add(2, 2) == 4\n",
            "from typing import List\ndef add(a, b):\n    return a * b",
        ),
    ],
)
def test_extract_program(completion, expected):
    assert extract_program(PROMPT, completion, HE_REF) == expected


def _task(name, path, **extra):
    cfg = TaskConfig(name=name, train={"path": path}, test={"path": path}, **extra)
    return make_task(cfg)


def test_humaneval_rows_verify_with_their_canonical_solutions():
    task = _task("humaneval", HUMANEVAL, warm_start_size=3, eval_size=5, pool_size=6)
    warm = task.warm_start()
    ev = task.eval_set(set(warm["prompt_id"]))
    pool = task.pool(1, set(warm["prompt_id"]) | set(ev["prompt_id"]))
    assert (warm.height, ev.height, pool.height) == (3, 5, 6)
    assert not set(ev["prompt_id"]) & set(warm["prompt_id"]) and not set(pool["prompt_id"]) & set(ev["prompt_id"])
    assert ev["prompt_id"][0].startswith("humaneval-HumanEval/")
    ref = parse_reference(ev["reference"][0])
    assert ref["format"] == "humaneval" and "def check(candidate)" in ref["tests"]
    # The targets are the canonical solutions, exactly continuing the prompt: they verify.
    samples = _samples(warm, warm["target"].to_list())
    verdicts = verify(get_verifier("sandbox"), warm, samples)
    assert verdicts["verdict"].to_list() == ["correct"] * 3
    details = json.loads(verdicts["details"][0])
    assert details["status"] == "passed" and details["tests"] and all(t["passed"] for t in details["tests"])
    wrong = verify(get_verifier("sandbox"), warm, _samples(warm, ["    return None\n"] * 3))
    assert wrong["verdict"].to_list() == ["incorrect"] * 3
    assert all(r.startswith(("failed", "error")) for r in wrong["reason"])


def _samples(prompts: pl.DataFrame, completions: list[str]) -> pl.DataFrame:
    return schemas.validate(
        prompts.select("prompt_id", "prompt").with_columns(
            pl.Series("completion", completions),
            round=pl.lit("r001"),
            sample_idx=pl.lit(0, pl.Int32),
            policy_id=pl.lit("base"),
            policy_hash=pl.lit(""),
            backend=pl.lit("test"),
            temperature=pl.lit(1.0),
            top_p=pl.lit(1.0),
            max_new_tokens=pl.lit(10, pl.Int32),
            seed=pl.lit(0, pl.Int64),
        ),
        "samples",
    )


def test_mbpp_rows_setup_code_and_entry_points():
    task = _task("mbpp", MBPP, eval_size=4)
    ev = task.eval_set(set())
    refs = [parse_reference(r) for r in ev["reference"]]
    assert [r["entry_point"] for r in refs] == ["add_two", "reverse_text", "largest", "is_even"]
    assert refs[2]["setup"] == "HELPER = max"
    assert "assert add_two(1, 2) == 3" in ev["prompt"][0] and ev["prompt"][0].startswith('"""')
    good = ["```python\n" + t + "\n```" for t in ev["target"]]
    assert verify(get_verifier("sandbox"), ev, _samples(ev, good))["verdict"].to_list() == ["correct"] * 4
    bad = verify(get_verifier("sandbox"), ev, _samples(ev, ["def add_two(a, b):\n    return a - b\n"] * 4))
    assert bad["verdict"].to_list() == ["incorrect"] * 4


def test_code_source_errors_are_clear(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"task_id": "x/1", "prompt": "def f():\n", "canonical_solution": "  pass"}) + "\n")
    with pytest.raises(SourceError, match=r"column\(s\) \['entry_point', 'test'\] not found"):
        _task("humaneval", str(rows)).eval_set(set())
    verdicts = SandboxVerifier().check_batch(["p"], ["x"], ["not json"], ["p"])
    assert verdicts[0].verdict == "unverifiable" and "not a code reference" in verdicts[0].reason


def test_code_config_defaults():
    cfg = parse_config(
        {
            "task": {"name": "mbpp", "train": {"path": MBPP}, "test": {"path": MBPP}},
            "verification": {"sandbox": {"wall_seconds": 3}},
        }
    )
    assert cfg.verification.sandbox.wall_seconds == 3
    from synth.tasks import default_verifier

    assert default_verifier(cfg.task) == "sandbox"
