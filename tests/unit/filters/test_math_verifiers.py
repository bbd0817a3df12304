"""Math verification: the most trusted code in the project, checked on real data."""

import json
import time

import polars as pl
import pytest

from filters.mathverify import boxed_answer, check_many
from filters.numeric import extract_number, gsm8k_reference, to_number
from filters.verifiers import MajorityVerifier, MathVerifier, NumericVerifier, get_verifier, verify
from selftaught.schemas import CORRECT, INCORRECT, UNVERIFIABLE
from tests.helpers import ROOT

DATA = ROOT / "data"


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_gsm8k_test_reference_solution_verifies():
    rows = _jsonl(DATA / "gsm8k" / "test.jsonl")
    v = NumericVerifier()
    misses = [
        r["question"][:60]
        for r in rows
        if v.check(r["question"], r["answer"], gsm8k_reference(r["answer"])).verdict != CORRECT
    ]
    assert len(rows) == 1319 and misses == []


@pytest.mark.parametrize(
    "text,want",
    [
        ("#### 1,234", "1,234"),
        ("The answer is $5.", "$5"),
        ("so \\boxed{42} ok", "42"),
        ("I got 3 apples and then 7", "7"),
        ("answer: -12", "-12"),
        ("it costs .5 dollars", ".5"),
    ],
)
def test_numeric_extraction(text, want):
    assert extract_number(text)[0] == want


@pytest.mark.parametrize(
    "completion,ref,verdict",
    [
        ("#### 1,000", "1000", CORRECT),
        ("The answer is $18.00.", "18", CORRECT),
        ("18 dollars", "18", CORRECT),
        ("#### 17", "18", INCORRECT),
        ("no idea", "18", INCORRECT),
        ("#### 18", "eighteen", UNVERIFIABLE),
        ("The answer is 0.50", "0.5", CORRECT),
        ("#### -3", "-3", CORRECT),
    ],
)
def test_numeric_verdicts(completion, ref, verdict):
    assert NumericVerifier().check("", completion, ref).verdict == verdict


def test_gsm8k_reference_needs_the_marker():
    assert gsm8k_reference("so 3+4=7\n#### 7") == "7" and to_number("1,000.0") == 1000
    with pytest.raises(ValueError, match="no '####'"):
        gsm8k_reference("7")


def test_math500_reference_solutions_verify_against_their_answers():
    rows = _jsonl(DATA / "math500" / "test.jsonl")
    t0 = time.monotonic()
    out = check_many([(r["solution"], r["answer"]) for r in rows], timeout=10)
    misses = [(r["unique_id"], r["answer"], o[1], o[3]) for r, o in zip(rows, out) if o[0] != CORRECT]
    assert misses == []
    assert time.monotonic() - t0 < 600


EQUIVALENT = [
    ("\\frac{1}{2}", "The answer is $\\boxed{0.5}$"),
    ("\\frac{1}{2}", "$\\boxed{\\dfrac{1}{2}}$"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "$\\boxed{(3, \\pi/2)}$"),
    ("[1, 3)", "$\\boxed{[1,3)}$"),
    ("\\{1, 2, 3\\}", "$\\boxed{\\{3, 2, 1\\}}$"),
    ("10\\%", "$\\boxed{10\\%}$"),
    ("2\\sqrt{2}", "$\\boxed{\\sqrt{8}}$"),
    ("x^2+2x+1", "$\\boxed{(x+1)^2}$"),
    ("12", "$\\boxed{12 \\text{ cm}}$"),
]
NOT_EQUIVALENT = [
    ("\\frac{1}{2}", "$\\boxed{0.51}$"),
    ("[1, 3)", "$\\boxed{(1,3)}$"),
    ("\\{1, 2\\}", "$\\boxed{\\{1, 2, 3\\}}$"),
    ("2\\sqrt{2}", "$\\boxed{2\\sqrt{3}}$"),
    ("12", "$\\boxed{13}$"),
]


def test_hand_written_equivalences_and_non_equivalences():
    pairs = [(c, r) for r, c in EQUIVALENT + NOT_EQUIVALENT]
    out = check_many(pairs, workers=2)
    got = [o[0] for o in out]
    assert got == [CORRECT] * len(EQUIVALENT) + [INCORRECT] * len(NOT_EQUIVALENT), list(zip(pairs, got))


@pytest.mark.parametrize(
    "junk", ["", "x" * 100_000, "\x00\xff\ufffd" * 1000, "{" * 5000 + "}" * 5000, "\\boxed{" * 300, "$" * 999]
)
def test_malformed_outputs_get_a_verdict_and_a_reason_quickly(junk):
    t0 = time.monotonic()
    verdict, _answer, _ref, reason = check_many([(junk, "\\frac{1}{2}")], workers=1, timeout=3)[0]
    assert verdict in (INCORRECT, UNVERIFIABLE) and reason
    assert time.monotonic() - t0 < 30


def test_a_timeout_is_unverifiable_not_incorrect():
    # A huge power tower makes sympy hang; the 1 s limit must turn it into unverifiable.
    hard = "$\\boxed{" + "2^{" * 40 + "2" + "}" * 40 + "}$"
    verdict, _a, _r, reason = check_many([(hard, "2^{" * 40 + "2" + "}" * 40 + "+1")], workers=1, timeout=1)[0]
    assert verdict in (UNVERIFIABLE, INCORRECT)
    if verdict == UNVERIFIABLE:
        assert "math-verify" in reason


def test_equal_pairs_are_checked_once_and_results_line_up():
    pairs = [("$\\boxed{1}$", "1"), ("$\\boxed{2}$", "1"), ("$\\boxed{1}$", "1")] * 5
    out = check_many(pairs, workers=2)
    assert [o[0] for o in out] == [CORRECT, INCORRECT, CORRECT] * 5


def test_math_verifier_through_verify_records_answers():
    prompts = pl.DataFrame({"prompt_id": ["a"], "reference": ["\\frac{1}{2}"]})
    samples = pl.DataFrame(
        {
            "round": ["r001"] * 2,
            "prompt_id": ["a", "a"],
            "sample_idx": [0, 1],
            "prompt": ["q", "q"],
            "completion": ["$\\boxed{0.5}$", "$\\boxed{3}$"],
        }
    )
    out = verify(MathVerifier(workers=1), prompts, samples)
    assert out["verdict"].to_list() == [CORRECT, INCORRECT] and out["extracted_answer"][1] == "3"
    assert out["verifier"][0] == "math@math-verify-1"


def test_majority_vote_needs_no_reference():
    v = MajorityVerifier()
    out = v.check_batch(
        [""] * 7,
        ["#### 4", "#### 4", "#### 5", "x", "#### 1", "#### 2", "#### 2"],
        [""] * 7,
        ["a", "a", "a", "a", "b", "b", "b"],
    )
    assert [c.verdict for c in out[:4]] == [CORRECT, CORRECT, INCORRECT, INCORRECT]
    assert out[0].reward == pytest.approx(0.5) and "pseudo-label 4" in out[0].reason
    assert [c.verdict for c in out[4:]] == [INCORRECT, CORRECT, CORRECT]


def test_majority_vote_ties_and_low_shares_are_configurable():
    comps, pids = ["#### 1", "#### 2"], ["a", "a"]
    assert {c.verdict for c in MajorityVerifier().check_batch([""] * 2, comps, [""] * 2, pids)} == {UNVERIFIABLE}
    broken = MajorityVerifier(break_ties=True).check_batch([""] * 2, comps, [""] * 2, pids)
    assert [c.verdict for c in broken] == [CORRECT, INCORRECT]
    low = MajorityVerifier(min_share=0.6, break_ties=True).check_batch([""] * 2, comps, [""] * 2, pids)
    assert {c.verdict for c in low} == {UNVERIFIABLE} and "share 0.50 < 0.6" in low[0].reason


def test_majority_with_math_answers_and_the_factory():
    assert boxed_answer("a \\boxed{\\frac{1}{ 2}} b") == "\\frac{1}{2}" and boxed_answer("none") is None
    from selftaught.config import parse_config

    cfg = parse_config(
        {"verification": {"verifier": "majority", "majority_answer": "math", "majority_min_share": 0.3}}
    ).verification
    v = get_verifier("majority", cfg)
    assert isinstance(v, MajorityVerifier) and v.answer == "math" and v.min_share == 0.3
