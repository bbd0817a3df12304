"""Selection (filters/select.py) and metrics (filters/metrics.py) on hand-made rows."""

import polars as pl
import pytest

from filters.metrics import accuracy_by_difficulty, pass_at_k, sample_metrics
from filters.select import accumulate, judged, select_sft
from selftaught import schemas


def _samples(rows):
    base = {
        "round": "r001",
        "policy_id": "base",
        "policy_hash": "h",
        "backend": "hf",
        "temperature": 0.8,
        "top_p": 1.0,
        "max_new_tokens": 10,
        "seed": 1,
        "prompt": "Q",
    }
    return schemas.validate(pl.DataFrame([{**base, **r} for r in rows]), "samples")


def _verdicts(rows):
    base = {
        "round": "r001",
        "reward": 0.0,
        "extracted_answer": None,
        "parsed_reference": None,
        "reason": "",
        "verifier": "t@1",
        "rationale_ok": True,
        "details": None,
    }
    return schemas.validate(
        pl.DataFrame(
            [{**base, **r} for r in rows],
            schema_overrides={"extracted_answer": pl.String, "parsed_reference": pl.String, "details": pl.String},
        ),
        "verdicts",
    )


S = _samples(
    [
        {"prompt_id": "a", "sample_idx": 0, "completion": " x"},
        {"prompt_id": "a", "sample_idx": 1, "completion": " y"},
        {"prompt_id": "a", "sample_idx": 2, "completion": "  y "},
        {"prompt_id": "b", "sample_idx": 0, "completion": " z"},
        {"prompt_id": "c", "sample_idx": 0, "completion": " w"},
    ]
)
V = _verdicts(
    [
        {"prompt_id": "a", "sample_idx": 0, "verdict": "incorrect"},
        {"prompt_id": "a", "sample_idx": 1, "verdict": "correct", "reward": 1.0},
        {"prompt_id": "a", "sample_idx": 2, "verdict": "correct", "reward": 1.0},
        {"prompt_id": "b", "sample_idx": 0, "verdict": "correct", "reward": 1.0, "rationale_ok": False},
        {"prompt_id": "c", "sample_idx": 0, "verdict": "unverifiable"},
    ]
)


def test_keeps_correct_only_capped_per_prompt_lowest_index_first():
    rows = select_sft(S, V, max_per_prompt=1)
    assert rows["row_id"].to_list() == ["r001/a/1", "r001/b/0"]
    assert rows["policy_id"].to_list() == ["base", "base"]


def test_dedup_drops_whitespace_variants():
    assert select_sft(S, V, max_per_prompt=5)["row_id"].to_list() == ["r001/a/1", "r001/b/0"]
    assert select_sft(S, V, max_per_prompt=5, dedup=False).height == 3


def test_require_rationale_drops_right_answers_with_wrong_steps():
    assert select_sft(S, V, max_per_prompt=1, require_rationale=True)["row_id"].to_list() == ["r001/a/1"]


def test_a_sample_without_verdict_is_an_error():
    with pytest.raises(ValueError, match="1 samples have no verdict"):
        judged(S, V.head(4))


def test_accumulate_keeps_each_row_once():
    first = select_sft(S, V, 1)
    assert accumulate(first, first).height == 2
    assert accumulate(None, first).equals(first)


def test_pass_at_k_matches_the_closed_form():
    assert pass_at_k(8, 0, 1) == 0.0
    assert pass_at_k(8, 8, 8) == 1.0
    assert pass_at_k(8, 1, 1) == pytest.approx(1 / 8)
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_sample_metrics_count_rates_and_bad_rationales():
    diff = pl.DataFrame({"prompt_id": ["a", "b", "c"], "difficulty": [1, 1, 2]})
    m = sample_metrics(judged(S, V), diff)
    assert m["samples"] == 5 and m["pass_rate"] == pytest.approx(3 / 5)
    assert m["unverifiable_share"] == pytest.approx(1 / 5)
    assert m["correct_with_bad_rationale"] == 1
    assert m["pass@1_d1"] == pytest.approx((2 / 3 + 1) / 2)


def test_accuracy_by_difficulty():
    df = pl.DataFrame({"difficulty": [1, 1, 2], "verdict": ["correct", "incorrect", "correct"]})
    assert accuracy_by_difficulty(df) == {1: 0.5, 2: 1.0}


def test_auto_frontier_is_the_hardest_reachable_pool_difficulty():
    from filters.metrics import pick_frontier

    base = {1: 0.9, 2: 0.9, 3: 0.27, 4: 0.015, 5: 0.0}
    assert pick_frontier("auto", base, [3, 4, 5]) == 3
    assert pick_frontier("auto", {3: 0.5, 4: 0.2}, [3, 4, 5]) == 4
    assert pick_frontier("auto", {}, [3, 4]) == 3
    assert pick_frontier(4, base, [3, 4, 5]) == 4


def test_per_prompt_stats_majority_and_spread():
    from filters.metrics import per_prompt, prompt_metrics

    df = pl.DataFrame(
        {
            "prompt_id": ["a"] * 4 + ["b"] * 4,
            "extracted_answer": ["1", "1", "2", None, "5", "6", "6", "7"],
            "verdict": [
                "correct",
                "correct",
                "incorrect",
                "incorrect",
                "correct",
                "incorrect",
                "incorrect",
                "incorrect",
            ],
        }
    )
    pp = per_prompt(df)
    a, b = pp.row(0, named=True), pp.row(1, named=True)
    assert (a["n"], a["correct"], a["distinct_answers"], a["majority_answer"], a["majority_correct"]) == (
        4,
        2,
        2,
        "1",
        True,
    )
    assert (b["solve_rate"], b["majority_answer"], b["majority_correct"]) == (0.25, "6", False)
    m = prompt_metrics(df)
    assert m["maj@4"] == 0.5 and m["distinct_answers_mean"] == 2.5
    assert m["solve_rate_std"] == pytest.approx(0.17677, abs=1e-4) and m["prompts_none_correct"] == 0.0


def _warm():
    return pl.DataFrame({"prompt_id": ["w1", "w2"], "prompt": ["Q1", "Q2"], "target": [" t1", " t2"]})


def test_training_rows_puts_the_warm_start_and_earlier_rounds_before_this_rounds_rows():
    from filters.select import training_rows
    from selftaught.config import SelectionConfig

    earlier = select_sft(S.with_columns(pl.lit("r000").alias("round")), V.with_columns(pl.lit("r000").alias("round")))
    got = training_rows(S, V, schemas.empty("repairs"), SelectionConfig(), warm_start=_warm(), earlier=earlier)
    assert got.rows["row_id"].to_list() == [
        "warm_start/w1/0",
        "warm_start/w2/0",
        "r000/a/1",
        "r000/b/0",
        "r001/a/1",
        "r001/b/0",
    ]
    assert got.new["row_id"].to_list() == ["r001/a/1", "r001/b/0"] and got.repairs == 0
    alone = training_rows(
        S,
        V,
        schemas.empty("repairs"),
        SelectionConfig(accumulate=False, include_warm_start=False, require_rationale=True),
        warm_start=_warm(),
        earlier=earlier,
    )
    assert alone.rows["row_id"].to_list() == ["r001/a/1"]  # b's steps do not check out


def test_training_rows_uses_the_selection_and_the_reward_threshold():
    from filters.select import training_rows
    from selftaught.config import SelectionConfig

    sel = SelectionConfig(max_per_prompt=5, dedup="none", include_warm_start=False)
    assert training_rows(S, V, schemas.empty("repairs"), sel).rows.height == 3
    assert training_rows(S, V, schemas.empty("repairs"), sel, min_reward=2.0).rows.height == 0
