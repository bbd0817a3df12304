"""Round diffs (filters/diff.py) on hand-made rows: prompts newly solved and lost per difficulty,
and the numbers of the kept rows."""

from __future__ import annotations

import polars as pl
import pytest

from filters.diff import eval_changes, kept_numbers


def test_eval_changes_count_each_prompt_once_per_difficulty():
    before = pl.DataFrame(
        {
            "prompt_id": ["a", "b", "c", "d"],
            "difficulty": [1, 1, 2, 2],
            "verdict": ["correct", "incorrect", "correct", "incorrect"],
        }
    )
    after = pl.DataFrame(
        {
            "prompt_id": ["a", "b", "c", "e"],
            "difficulty": [1, 1, 2, 2],
            "verdict": ["incorrect", "correct", "correct", "correct"],
        }
    )
    t = eval_changes(before, after, "r002", "r001")
    assert t.select("difficulty", "prompts", "newly_solved", "newly_lost").rows() == [(1, 2, 1, 1), (2, 1, 0, 0)]
    assert t["newly_solved_ids"].to_list() == [["b"], []] and t["newly_lost_ids"].to_list() == [["a"], []]
    kept = pl.DataFrame({"prompt_id": ["a", "b", "b"], "completion": ["xx", "xxxx", "xxxxxx"]})
    before_kept = pl.DataFrame({"prompt_id": ["b"], "completion": ["x"]})
    verdicts = pl.DataFrame(
        {
            "prompt_id": ["a", "a", "b", "b"],
            "verdict": ["correct"] * 3 + ["incorrect"],
            "extracted_answer": ["1", "1", "2", "3"],
        }
    )
    n = kept_numbers(kept, before_kept, verdicts)
    assert n["kept_overlap"] == 0.5 and n["kept_answer_length"] == 4.0 and n["kept_answer_length_drift"] == 3.0
    assert n["distinct_answers_per_prompt"] == 1.5 and n["kept_from_saturated_prompts"] == pytest.approx(1 / 3)
