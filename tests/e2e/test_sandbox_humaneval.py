"""The sandbox verifier on the whole HumanEval test set: all 164 canonical solutions pass, and wrong
ones (an empty body) fail. (The sandbox's unit tests: tests/unit/filters/test_sandbox.py.)"""

import gzip
import json

from filters.sandbox import run_many
from tests.helpers import ROOT

HUMANEVAL = ROOT / "data" / "humaneval" / "HumanEval.jsonl.gz"


def humaneval():
    return [json.loads(line) for line in gzip.open(HUMANEVAL, "rt")]


def test_canonical_humaneval_solutions_pass_and_wrong_ones_fail():
    rows = humaneval()
    good = run_many(
        [
            {"program": r["prompt"] + r["canonical_solution"], "tests": r["test"], "entry_point": r["entry_point"]}
            for r in rows
        ],
        workers=4,
    )
    failures = {r["task_id"]: (g.status, g.reason) for r, g in zip(rows, good) if not g.passed}
    assert len(rows) == 164 and not failures
    assert all(g.tests and all(t.passed for t in g.tests) for g in good)
    # Wrong variants: an empty body, and the canonical solution of the next problem.
    wrong = run_many(
        [
            {"program": r["prompt"] + "    return None\n", "tests": r["test"], "entry_point": r["entry_point"]}
            for r in rows[:40]
        ],
        workers=4,
    )
    assert not any(w.passed for w in wrong)
    assert {w.status for w in wrong} <= {"failed", "error"}
