"""The arithmetic verifier and verify(): verdicts and their reasons, the step check, a verifier that
raises gives unverifiable rows, unknown prompts and verifier names."""

import polars as pl
import pytest

from filters.verifiers import ArithmeticVerifier, Check, get_verifier, rationale_consistent, verify
from selftaught.schemas import CORRECT, INCORRECT, UNVERIFIABLE
from synth import arithmetic

V = ArithmeticVerifier()


P = arithmetic.prompt_text(347, 85)


def test_reference_solution_is_correct_with_consistent_rationale():
    c = V.check(P, arithmetic.rationale(347, 85), "432")
    assert (c.verdict, c.reward, c.extracted_answer, c.rationale_ok) == (CORRECT, 1.0, "432", True)


def test_right_answer_with_wrong_rationale_is_correct_but_flagged():
    c = V.check(P, " 7+5+0=12:2; 4+8+1=14:42; 3+0+1=4:432; answer 432", "432")
    assert c.verdict == CORRECT and c.rationale_ok is False
    assert "step 2" in c.reason


def test_wrong_answer_is_incorrect_with_reason():
    c = V.check(P, " 7+5+0=12:2; answer 431", "432")
    assert c.verdict == INCORRECT and c.extracted_answer == "431" and "431 != 432" in c.reason


@pytest.mark.parametrize("completion", ["", "gibberish", "answer", "\x00\xff" * 50, "1" * 5000])
def test_outputs_without_an_answer_are_incorrect(completion):
    c = V.check(P, completion, "432")
    assert c.verdict == INCORRECT and c.extracted_answer is None


def test_last_answer_counts():
    assert V.check(P, " answer 1; answer 432", "432").verdict == CORRECT


def test_missing_reference_is_unverifiable_not_incorrect():
    assert V.check(P, " answer 432", "").verdict == UNVERIFIABLE


@pytest.mark.parametrize("a,b", [(1, 2), (95, 8), (999, 1), (1234, 98765)])
def test_step_checker_accepts_every_reference_rationale(a, b):
    body = arithmetic.rationale(a, b).rsplit("answer", 1)[0].strip().rstrip(";")
    ok, why = rationale_consistent(a, b, [s for s in body.split(";") if s.strip()], str(a + b))
    assert ok, why


def test_a_verifier_that_raises_gives_unverifiable_rows_with_the_error():
    class Broken:
        name, version = "broken", "0"

        def check(self, prompt, completion, reference):
            raise RuntimeError("grader crashed")

    prompts = arithmetic.make_problems({1: 2}, seed=0)
    samples = pl.DataFrame(
        {
            "round": ["r001"] * 2,
            "prompt_id": prompts["prompt_id"],
            "sample_idx": [0, 0],
            "prompt": prompts["prompt"],
            "completion": [" answer 1"] * 2,
        }
    )
    out = verify(Broken(), prompts, samples)
    assert out["verdict"].to_list() == [UNVERIFIABLE, UNVERIFIABLE]
    assert all("grader crashed" in r for r in out["reason"])


def test_samples_of_unknown_prompts_are_an_error():
    prompts = arithmetic.make_problems({1: 1}, seed=0)
    samples = pl.DataFrame(
        {"round": ["r001"], "prompt_id": ["nope"], "sample_idx": [0], "prompt": ["x"], "completion": ["y"]}
    )
    with pytest.raises(ValueError, match="no prompt row"):
        verify(V, prompts, samples)


def test_unknown_verifier_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="available: .*majority"):
        get_verifier("nope")
    assert isinstance(Check(CORRECT, 1.0, "1", ""), Check)


def test_a_verifier_that_raises_on_every_row_gives_unverifiable_rows():
    from filters.verifiers import verify
    from selftaught import schemas

    class Broken:
        name, version = "broken", "0"

        def check(self, prompt, completion, reference):
            raise KeyError("the verifier's own bug")

    prompts = pl.DataFrame({"prompt_id": ["a", "b"], "reference": ["1", "2"]})
    samples = schemas.empty("samples").vstack(
        pl.DataFrame(
            {
                "round": ["r001"] * 2,
                "prompt_id": ["a", "b"],
                "sample_idx": [0, 0],
                "policy_id": ["base"] * 2,
                "policy_hash": [""] * 2,
                "prompt": ["x"] * 2,
                "completion": ["y"] * 2,
                "backend": ["hf"] * 2,
                "temperature": [1.0] * 2,
                "top_p": [1.0] * 2,
                "max_new_tokens": [5] * 2,
                "seed": [0] * 2,
            },
            schema=schemas.SAMPLES,
        )
    )
    v = verify(Broken(), prompts, samples)
    assert v["verdict"].to_list() == ["unverifiable"] * 2
    assert all("verifier error: KeyError" in r for r in v["reason"])
    with pytest.raises(ValueError, match=r"1 sample prompt_id\(s\) have no prompt row"):
        verify(Broken(), prompts.head(1), samples)
