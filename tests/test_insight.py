"""What no peer shows (issue 19): round diffs, the verifier audit and the compute ledger.
Each on hand-made rows, then on two real rounds of the tiny experiment (run once for the
module): every number recomputed from the tables on disk, the CLI and the report asset."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from filters.audit import audit
from filters.diff import eval_changes, kept_numbers
from filters.ledger import round_ledger
from pipelines.cli import main
from tests.helpers import TINY_CONFIG, copy_config, fresh_dagster_home, run_rounds


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("insight")
    config = copy_config(
        TINY_CONFIG, folder / "tiny.yaml", storage_root=str(folder / "store"), operations__price_per_hour=2.0
    )
    store, meta, _ = run_rounds(config, folder, rounds=2)
    return config, folder, store, meta


# ---- round_diff ------------------------------------------------------------------------------


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


@pytest.mark.slow
def test_round_diff_numbers_add_up_against_the_tables(two_rounds, capsys):
    config, _, store, meta = two_rounds
    diff = meta[("round_diff", "r002")]
    assert diff["against"] == "r001" and meta[("round_diff", "r001")]["against"] == "base"

    before = pl.read_parquet(store.table_path("evaluation", "r001")).select(
        "prompt_id", "difficulty", b=pl.col("verdict") == "correct"
    )
    after = pl.read_parquet(store.table_path("evaluation", "r002")).select(
        "prompt_id", a=pl.col("verdict") == "correct"
    )
    both = before.join(after, on="prompt_id")
    assert diff["newly_solved"] == both.filter(pl.col("a") & ~pl.col("b")).height
    assert diff["newly_lost"] == both.filter(~pl.col("a") & pl.col("b")).height
    table = pl.read_parquet(store.table_path("round_diff", "r002"))
    assert table["newly_solved"].sum() == diff["newly_solved"] and table["prompts"].sum() == both.height

    rows = pl.read_parquet(store.table_path("training_set", "r002"))
    kept = rows.filter((pl.col("source_round") == "r002") & (pl.col("origin") != "warm_start"))
    assert diff["kept_rows"] == kept.height == meta[("training_set", "r002")]["new_rows"]
    kept_before = rows.filter(pl.col("source_round") == "r001")
    shared = set(kept["prompt_id"]) & set(kept_before["prompt_id"])
    assert diff["kept_overlap"] == pytest.approx(len(shared) / len(set(kept["prompt_id"])))
    verdicts = pl.read_parquet(store.table_path("verdicts", "r002"))
    distinct = verdicts.group_by("prompt_id").agg(pl.col("extracted_answer").drop_nulls().n_unique())
    assert diff["distinct_answers_per_prompt"] == pytest.approx(distinct["extracted_answer"].mean())
    assert "| difficulty | prompts |" in diff["diff"]

    assert main(["diff", "--config", str(config), "r002"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("r002 against r001") and f"newly_solved: {diff['newly_solved']:.4g}" in out
    assert main(["diff", "--config", str(config), "base", "r002"]) == 0
    assert capsys.readouterr().out.startswith("r002 against base")
    assert main(["diff", "--config", str(config), "r009"]) == 2
    assert "no evaluation of r008 or r009" in capsys.readouterr().err


# ---- the verifier audit ----------------------------------------------------------------------


def _rows(prompts: list[tuple[str, str, str]], completions: list[tuple[str, str]]):
    p = pl.DataFrame(prompts, schema=["prompt_id", "prompt", "reference"], orient="row")
    s = pl.DataFrame(
        [(pid, i, c) for i, (pid, c) in enumerate(completions)],
        schema=["prompt_id", "sample_idx", "completion"],
        orient="row",
    )
    s = s.with_columns(pl.col("sample_idx").cast(pl.Int32), pl.lit("r001").alias("round"))
    return p, s.join(p.select("prompt_id", "prompt"), on="prompt_id")


def test_numeric_verdicts_get_math_verify_as_second_opinion_and_the_tells_are_counted():
    from filters.verifiers import NumericVerifier, verify

    prompts, samples = _rows(
        [
            ("p1", "Question: Tom has 3 apples and buys 2. How many?\nAnswer:", "5"),
            ("p2", "Question: A box holds 12 eggs. How many eggs in 1 box?\nAnswer:", "12"),
        ],
        [
            ("p1", "He has 3 + 2 = 5 apples. #### 5"),  # agree
            ("p1", "#### 5\nActually it is $\\boxed{6}$"),  # numeric reads '####' 5; math-verify the boxed 6
            ("p2", "12"),  # right, restates the prompt's number, no reasoning
            ("p2", "There are twelve eggs in it, so 12"),
        ],
    )  # right by the last-number fallback
    verdicts = verify(NumericVerifier(), prompts, samples)
    result = audit("numeric", prompts, samples, verdicts)
    assert result.second_opinion == "math-verify"
    assert result.numbers["audit_correct_samples"] == 4
    assert result.disagreeing.select("prompt_id", "sample_idx").rows() == [("p1", 1)]
    assert result.numbers["audit_disagreement_share"] == 0.25
    assert result.numbers["tell_restated_answer"] == 0.5  # both p2 answers are in the prompt
    assert result.numbers["tell_empty_reasoning"] == 0.5  # "12", and "#### 5" before any words
    assert result.numbers["tell_last_number_fallback"] == 0.5  # "12" and "... so 12"
    assert "| p1 | 1 |" in result.markdown()


def test_arithmetic_right_answers_with_wrong_steps_are_disagreements():
    from filters.verifiers import ArithmeticVerifier, verify

    prompts, samples = _rows(
        [("p", "Q: 17+25=? A:", "42")],
        [("p", "7+5+0=12:2; 1+2+1=4:42; answer 42"), ("p", "7+5+0=13:3; 1+2+1=4:43; answer 42")],
    )
    verdicts = verify(ArithmeticVerifier(), prompts, samples)
    result = audit("arithmetic", prompts, samples, verdicts)
    assert result.second_opinion == "step check" and result.numbers["audit_disagreement_share"] == 0.5
    assert result.disagreeing["sample_idx"].to_list() == [1]
    assert "audit_disagreement_share" not in audit("majority", prompts, samples, verdicts).numbers


def test_kept_code_is_rerun_in_a_fresh_sandbox_with_its_tests_reversed():
    import json

    from filters.code import code_reference, reordered_tests
    from filters.verifiers import SandboxVerifier, verify

    tests = ["assert count() == 1", "assert count() == 2"]
    honest = "def count():\n    return 1 if not hasattr(count, 'n') else 2\n"  # passes only in the given order
    stateful = "def count():\n    count.n = getattr(count, 'n', 0) + 1\n    return count.n\n"
    fixed = "def count():\n    return 1\n"
    reference = code_reference("mbpp", "count", tests)
    prompts, samples = _rows([("c", "Write count().\n", reference)], [("c", stateful), ("c", honest), ("c", fixed)])
    verdicts = verify(SandboxVerifier(), prompts, samples)
    assert verdicts["verdict"].to_list() == ["correct", "incorrect", "incorrect"]  # the verifier's view
    result = audit("sandbox", prompts, samples, verdicts)
    assert result.second_opinion == "sandbox re-run, tests reversed"
    assert result.disagreeing["sample_idx"].to_list() == [0] and result.numbers["audit_disagreement_share"] == 1.0
    he = json.dumps(
        {
            "format": "humaneval",
            "entry_point": "f",
            "setup": "",
            "tests": "def check(candidate):\n    x = 1\n    assert candidate(1) == 1\n    assert candidate(2) == 2\n",
        }
    )
    flipped = json.loads(reordered_tests(he))["tests"]
    assert flipped.index("x = 1") < flipped.index("candidate(2)") < flipped.index("candidate(1)")


def test_the_check_warns_on_disagreement_and_stops_the_round_above_the_bound():
    from assets.rounds import _audit_check
    from filters.audit import Audit

    empty = pl.DataFrame(
        schema={
            "prompt_id": pl.String,
            "sample_idx": pl.Int32,
            "second_verdict": pl.String,
            "reason": pl.String,
            "completion": pl.String,
        }
    )
    some = Audit("step check", {"audit_disagreement_share": 0.1}, empty)
    assert _audit_check(Audit("step check", {"audit_disagreement_share": 0.0}, empty), None).passed
    warn = _audit_check(some, None)
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
    assert _audit_check(some, 0.2).severity == dg.AssetCheckSeverity.WARN
    assert _audit_check(some, 0.05).severity == dg.AssetCheckSeverity.ERROR


@pytest.mark.slow
def test_a_real_rounds_audit_matches_its_verdicts_table(two_rounds):
    _, _, store, meta = two_rounds
    verdicts = pl.read_parquet(store.table_path("verdicts", "r001"))
    correct = verdicts.filter(pl.col("verdict") == "correct")
    m = meta[("verdicts", "r001")]
    assert m["audit_correct_samples"] == correct.height
    assert m["audit_disagreement_share"] == pytest.approx(
        correct.filter(~pl.col("rationale_ok")).height / correct.height
    )


# ---- the compute ledger ----------------------------------------------------------------------


def test_a_rounds_ledger_adds_its_stages_up():
    stages = [
        {
            "round": "r002",
            "stage": "samples",
            "stage_wall_s": 1800.0,
            "stage_cpu_s": 3000.0,
            "stage_peak_rss_mb": 900.0,
            "tokens_generated": 50_000,
        },
        {
            "round": "r002",
            "stage": "verdicts",
            "stage_wall_s": 600.0,
            "stage_cpu_s": 500.0,
            "stage_peak_rss_mb": 950.0,
            "samples_verified": 8000,
        },
        {
            "round": "r002",
            "stage": "training_set",
            "stage_wall_s": 1.0,
            "stage_cpu_s": 1.0,
            "stage_peak_rss_mb": 950.0,
            "kept_rows": 200,
        },
        {
            "round": "r002",
            "stage": "evaluation",
            "stage_wall_s": 1199.0,
            "stage_cpu_s": 1000.0,
            "stage_peak_rss_mb": 1000.0,
            "frontier_delta": 0.05,
        },
    ]
    row = round_ledger(stages, price_per_hour=3.0)
    assert row["wall_s"] == 3600.0 and row["cpu_s"] == 4501.0 and row["peak_rss_mb"] == 1000.0
    assert row["kept_per_1k_samples"] == 25.0 and row["points_per_hour"] == pytest.approx(5.0)
    assert row["cost"] == pytest.approx(3.0) and row["tokens_generated"] == 50_000
    assert round_ledger([{"round": "r001", "stage": "samples"}])["points_per_hour"] is None  # an old round


@pytest.mark.slow
def test_the_ledger_of_real_rounds_matches_the_tables_and_drives_the_stop_rule(two_rounds, capsys):
    from pipelines.build import build_definitions
    from pipelines.progress import too_slow
    from selftaught.config import load_config
    from synth.backends import count_tokens

    config, folder, store, meta = two_rounds
    for stage in ("prompts", "samples", "verdicts", "training_set", "policy", "evaluation", "round_diff"):
        m = meta[(stage, "r002")]
        assert m["stage_wall_s"] > 0 and m["stage_cpu_s"] >= 0 and m["stage_peak_rss_mb"] > 50, stage
    assert meta[("policy", "r002")]["stage_cpu_s"] > 0
    samples = pl.read_parquet(store.table_path("samples", "r001"))
    assert meta[("samples", "r001")]["generated_tokens"] == count_tokens(
        store.model_dir("base") / "model", samples["completion"]
    )
    assert meta[("policy", "r002")]["trained_tokens"] > 0

    with fresh_dagster_home(folder), dg.DagsterInstance.get() as instance:
        defs = build_definitions(config)
        assert defs.resolve_job_def("refresh_summary").execute_in_process(instance=instance).success
        cfg = load_config(config)
        assert too_slow(instance, cfg, None) is None
        assert too_slow(instance, cfg, 1e9).startswith("too slow: r002 gained")
    table = pl.read_parquet(store.table_path("ledger"))
    assert table["round"].to_list() == ["r001", "r002"]
    r2 = table.row(1, named=True)
    wall = sum(
        meta[(s, "r002")]["stage_wall_s"]
        for s in (
            "prompts",
            "sampling_plan",
            "samples",
            "verdicts",
            "repairs",
            "training_set",
            "pairs",
            "policy",
            "evaluation",
            "round_diff",
        )
    )
    assert r2["wall_s"] == pytest.approx(wall)
    assert r2["samples_verified"] == pl.read_parquet(store.table_path("verdicts", "r002")).height
    assert r2["kept_rows"] == meta[("training_set", "r002")]["new_rows"]
    assert r2["kept_per_1k_samples"] == pytest.approx(1000 * r2["kept_rows"] / r2["samples_verified"])
    assert r2["cost"] == pytest.approx(wall / 3600 * 2.0)
    delta = meta[("evaluation", "r002")]["frontier_delta"]
    assert r2["points_per_hour"] == pytest.approx(100 * delta / (wall / 3600))
    assert (store.root / "ledger.png").stat().st_size > 5_000

    assert main(["ledger", "--config", str(config), "--dagster-home", str(folder / "dagster_home")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["round", "wall", "s"] and lines[3].split()[0] == "r002"


def test_a_stage_reports_its_own_peak_memory_not_the_process_high_water_mark():
    """Stages run one after another in one process (`selftaught run`): a small stage after a
    big one must not report the big one's peak (the ledger's peak grew 5.4 -> 6.1 -> 6.5 GB
    over three real-model rounds partly because each stage reported the run's peak so far)."""
    import numpy as np

    from assets.stage_costs import _Meter

    big = _Meter()
    block = np.ones(400 * 2**20 // 8)  # 400 MB, touched
    big_peak = big.read()["stage_peak_rss_mb"]
    del block
    small = _Meter()
    block = np.ones(20 * 2**20 // 8)
    small_peak = small.read()["stage_peak_rss_mb"]
    del block
    assert big_peak - small_peak > 300, (big_peak, small_peak)


@pytest.mark.slow
def test_three_rounds_in_one_process_peak_like_the_first(tmp_path):
    """Nothing of a round stays alive into the next: with the three rounds in one process, round
    3's peak is within 10% (or 40 MB) of round 1's, stage by stage."""
    config = copy_config(TINY_CONFIG, tmp_path / "tiny.yaml", storage_root=str(tmp_path / "store"), max_rounds=3)
    _, meta, _ = run_rounds(config, tmp_path, rounds=3)
    for stage in ("samples", "verdicts", "training_set", "policy", "evaluation"):
        first, third = meta[(stage, "r001")]["stage_peak_rss_mb"], meta[(stage, "r003")]["stage_peak_rss_mb"]
        assert third <= max(first * 1.10, first + 40), (stage, first, third)
