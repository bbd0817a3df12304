"""The verifier audit (filters/audit.py) on hand-made rows: a second opinion for each verifier
(math-verify for numeric verdicts, the step check for arithmetic, a fresh sandbox run with the
tests reversed for code) and the disagreements it counts."""

from __future__ import annotations

import polars as pl

from filters.audit import audit


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
