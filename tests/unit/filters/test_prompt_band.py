"""Prompts chosen by earlier rounds' solve rates (filters/prompt_band.py, sampling.prompt_band)
and the zero-std share of GRPO groups (filters.metrics.zero_std_share)."""

import polars as pl
import pytest

from filters.metrics import zero_std_share
from filters.prompt_band import choose_prompts, latest_solve_rates
from selftaught import schemas
from selftaught.config import PromptBandConfig


def _prompts(ids: list[str], round_key: str) -> pl.DataFrame:
    return schemas.validate(
        pl.DataFrame(
            {
                "prompt_id": ids,
                "split": ["pool"] * len(ids),
                "round": [round_key] * len(ids),
                "prompt": [f"q {i}" for i in ids],
                "reference": ["1"] * len(ids),
                "target": [""] * len(ids),
                "difficulty": [1] * len(ids),
                "fields": [None] * len(ids),
            },
            schema_overrides={"difficulty": pl.Int32, "fields": pl.String},
        ),
        "prompts",
    )


def _judged(verdicts: dict[str, str]) -> pl.DataFrame:
    """prompt_id -> one letter per sample: c(orrect), i(ncorrect), u(nverifiable)."""
    word = {"c": "correct", "i": "incorrect", "u": "unverifiable"}
    rows = [(p, word[v]) for p, vs in verdicts.items() for v in vs]
    return pl.DataFrame(rows, schema=["prompt_id", "verdict"], orient="row")


def test_the_latest_round_that_sampled_a_prompt_gives_its_rate():
    rates = latest_solve_rates([("r001", _judged({"a": "ii", "b": "cc"})), ("r002", _judged({"a": "ci"}))])
    assert rates.select("prompt_id", "solve_rate", "measured_in").rows() == [("a", 0.5, "r002"), ("b", 1.0, "r001")]


def test_the_band_keeps_uncertain_prompts_first_then_fills_with_fresh_ones():
    earlier = _prompts(["a", "b", "c", "d", "e"], "r001")
    rates = latest_solve_rates([("r001", _judged({"a": "iiii", "b": "ciii", "c": "ccii", "d": "cccc", "e": "ccci"}))])
    fresh = _prompts(["c", "x", "y", "z"], "r002")  # c is measured already: not fresh
    choice = choose_prompts(fresh, earlier, rates, 0.0, 1.0, True, "r002")
    # In (0, 1): b 0.25, c 0.5, e 0.75; nearest 0.5 first (ties by id), then fresh x, up to the pool size 4.
    assert choice.prompts["prompt_id"].to_list() == ["c", "b", "e", "x"]
    assert (choice.prompts["round"] == "r002").all() and choice.prompts.columns == list(schemas.TABLES["prompts"])
    n = choice.numbers
    assert (n["measured"], n["in_band"], n["reused"], n["fresh"], n["kept"], n["candidates"]) == (5, 3, 3, 1, 4, 8)
    assert n["reused_mean_solve_rate"] == pytest.approx(0.5)


def test_without_fill_only_measured_prompts_in_the_band_remain_and_at_most_the_pool_size():
    earlier = _prompts([f"p{i}" for i in range(6)], "r001")
    rates = latest_solve_rates([("r001", _judged({f"p{i}": "ci" for i in range(6)}))])
    choice = choose_prompts(_prompts(["x", "y"], "r002"), earlier, rates, 0.0, 1.0, False, "r002")
    assert choice.prompts.height == 2 and choice.numbers["fresh"] == 0
    narrow = choose_prompts(_prompts(["x", "y"], "r002"), earlier, rates, 0.6, 1.0, False, "r002")
    assert narrow.prompts.height == 0 and narrow.numbers["in_band"] == 0


def test_round_one_has_nothing_measured_and_keeps_its_fresh_pool():
    fresh = _prompts(["x", "y"], "r001")
    choice = choose_prompts(fresh, fresh.head(0), latest_solve_rates([]), 0.0, 1.0, True, "r001")
    assert choice.prompts.equals(fresh) and choice.numbers["reused"] == 0


def test_an_empty_band_is_a_config_error():
    with pytest.raises(ValueError, match="must be below high"):
        PromptBandConfig(low=0.5, high=0.5)


def test_zero_std_share_counts_groups_whose_rewards_are_all_equal():
    rollouts = pl.DataFrame(
        {
            "step": [0, 0, 0, 0, 1, 1, 1, 1],
            "prompt_id": ["a", "a", "b", "b", "a", "a", "b", "b"],
            "reward": [1.0, 1.0, 0.0, 1.0, None, None, None, 0.0],
        }
    )
    assert zero_std_share(rollouts) == pytest.approx(0.5)  # (0,a) flat, (0,b) not, (1,a) flat, (1,b) not


def test_a_probe_takes_at_least_two_samples_and_earlier_is_the_default():
    assert PromptBandConfig().measure == "earlier"
    assert PromptBandConfig(measure="probe").probe_samples == 4
    with pytest.raises(ValueError, match="probe_samples"):
        PromptBandConfig(measure="probe", probe_samples=1)
    with pytest.raises(ValueError, match="measure"):
        PromptBandConfig(measure="oracle")
