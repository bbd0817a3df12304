"""The arithmetic task (synth/arithmetic.py): rationales, deterministic problems, disjoint splits."""

import pytest

from selftaught.config import TaskConfig
from synth import arithmetic
from synth.tasks import ArithmeticTask


def test_rationale_matches_the_documented_format():
    text = arithmetic.prompt_text(347, 85) + arithmetic.rationale(347, 85)
    assert text == "Q: 347+85=? A: 7+5+0=12:2; 4+8+1=13:32; 3+0+1=4:432; answer 432"


@pytest.mark.parametrize("a,b", [(0, 0), (9, 1), (999, 1), (95, 8), (12345, 98765), (7, 1000)])
def test_rationale_final_partial_is_the_sum(a, b):
    r = arithmetic.rationale(a, b)
    last_step = r.split(";")[-2].strip()
    assert last_step.split(":")[1] == str(a + b)
    assert r.endswith(f"answer {a + b}")


def test_problems_are_deterministic_distinct_and_of_the_right_size():
    a = arithmetic.make_problems({2: 20, 3: 30}, seed=5)
    b = arithmetic.make_problems({2: 20, 3: 30}, seed=5)
    assert a.equals(b)
    assert a["prompt_id"].n_unique() == 50
    for row in a.iter_rows(named=True):
        x, y = row["prompt"][3:].split("=")[0].split("+")
        assert max(len(x), len(y)) == row["difficulty"]
        assert int(x) + int(y) == int(row["reference"])


def test_exclusion_keeps_splits_disjoint():
    task = ArithmeticTask(TaskConfig())
    warm = task.warm_start()
    ev = task.eval_set(set(warm["prompt_id"]))
    pool = task.pool(1, set(warm["prompt_id"]) | set(ev["prompt_id"]))
    assert not set(warm["prompt_id"]) & set(ev["prompt_id"])
    assert not set(pool["prompt_id"]) & (set(warm["prompt_id"]) | set(ev["prompt_id"]))
    assert task.pool(1, set()).equals(task.pool(1, set())) and not task.pool(2, set()).equals(task.pool(1, set()))


def test_impossible_counts_are_a_clear_error():
    with pytest.raises(ValueError, match="cannot draw 80 distinct 1-digit"):
        arithmetic.make_problems({1: 80}, seed=0)
    with pytest.raises(ValueError, match="ran out of unused 1-digit"):
        used = {arithmetic.prompt_id(a, b) for a in range(10) for b in range(10) if a + b != 9}
        arithmetic.make_problems({1: 20}, seed=1, exclude=used)
