"""The recipe stages on hand-made rows: RFT's distinct reasoning paths, self-consistency's pseudo
labels, STaR rationalization, Re-ReST reflection feedback, SPIN, judge and correctness pairs,
B-STaR's balance score and budgets, best-of-k. (Each recipe's rounds through Dagster:
tests/e2e/test_recipe_rounds.py.)"""

import polars as pl
import pytest

from filters.feedback import feedback
from filters.judge import parse_score
from filters.metrics import allocate_samples, balance_score, best_of_k
from filters.pairs import best_worst_pairs, reference_pairs
from filters.select import select_repairs, select_sft
from filters.verifiers import get_verifier, verify
from selftaught import schemas
from selftaught.config import ConfigError, TaskConfig, parse_config
from synth.arithmetic import make_problems
from synth.repair import rationalize_attempts
from synth.tasks import make_task
from tests.helpers import ROOT


def _samples(prompts: pl.DataFrame, completions: dict[str, list[str]]) -> pl.DataFrame:
    rows = []
    for pid, texts in completions.items():
        prompt = prompts.filter(pl.col("prompt_id") == pid)["prompt"][0]
        for i, c in enumerate(texts):
            rows.append(
                {
                    "round": "r001",
                    "prompt_id": pid,
                    "sample_idx": i,
                    "policy_id": "base",
                    "policy_hash": "",
                    "prompt": prompt,
                    "completion": c,
                    "backend": "hf",
                    "temperature": 1.0,
                    "top_p": 1.0,
                    "max_new_tokens": 40,
                    "seed": 0,
                }
            )
    return schemas.validate(pl.DataFrame(rows), "samples")


def _problems(n: int = 3) -> pl.DataFrame:
    return make_problems({2: n}, seed=3)


def test_rationalization_hints_only_unsolved_prompts_and_trains_without_the_hint():
    prompts = _problems()
    a, b, c = prompts["prompt_id"].to_list()
    ref = dict(zip(prompts["prompt_id"], prompts["reference"]))
    target = dict(zip(prompts["prompt_id"], prompts["target"]))
    samples = _samples(prompts, {a: [target[a], " answer 1"], b: [" answer 1"], c: [" answer 2", " answer 3"]})
    verdicts = verify(get_verifier("arithmetic"), prompts, samples)
    attempts = rationalize_attempts(
        prompts,
        samples.join(verdicts, on=["round", "prompt_id", "sample_idx"]),
        "Hint: the answer is {reference}. {prompt}",
    )
    assert attempts["prompt_id"].to_list() == sorted([b, c])  # a was solved: no hint for it
    for row in attempts.iter_rows(named=True):
        assert row["attempt_prompt"] == f"Hint: the answer is {ref[row['prompt_id']]}. {row['prompt']}"
    repairs = schemas.validate(
        pl.DataFrame(
            {
                "round": ["r001"] * 2,
                "prompt_id": [b, c],
                "repair_idx": [0, 0],
                "mode": ["rationalization"] * 2,
                "failed_sample_idx": [None, None],
                "feedback": [None, None],
                "attempt_prompt": attempts["attempt_prompt"].to_list(),
                "prompt": attempts["prompt"].to_list(),
                "completion": [target[b], " answer 5"],
                "policy_id": ["base"] * 2,
                "policy_hash": [""] * 2,
                "verdict": ["correct", "incorrect"],
                "reward": [1.0, 0.0],
                "extracted_answer": [ref[b], "5"],
                "rationale_ok": [True, False],
                "reason": ["", ""],
            },
            schema_overrides={"failed_sample_idx": pl.Int32},
        ),
        "repairs",
    )
    rows = select_repairs(repairs)
    assert rows["prompt_id"].to_list() == [b] and rows["origin"].to_list() == ["rationalization"]
    assert rows["prompt"][0] == prompts.filter(pl.col("prompt_id") == b)["prompt"][0]  # hint removed
    assert rows["row_id"][0] == f"r001/{b}/repair-0"


def test_rationalize_refuses_label_free_setups():
    with pytest.raises(ConfigError, match="rationalize gives the reference answer as a hint"):
        parse_config({"repair": {"mode": "rationalize"}, "verification": {"verifier": "majority"}})
    with pytest.raises(ConfigError, match="must contain {reference}"):
        parse_config({"repair": {"mode": "rationalize", "template": "{prompt} no hint"}})


def test_reflection_feedback_never_carries_the_reference():
    prompts = _problems(1)
    pid, ref = prompts["prompt_id"][0], prompts["reference"][0]
    samples = _samples(prompts, {pid: [" answer 7", "no idea"]})
    verdicts = verify(get_verifier("arithmetic"), prompts, samples)
    assert ref in verdicts["reason"][0]  # the verifier's own reason names the reference...
    mode = get_verifier("arithmetic").plugin.caps.feedback
    texts = [
        feedback(v, a, r, mode) for v, a, r in verdicts.select("verdict", "extracted_answer", "reason").iter_rows()
    ]
    assert texts == ["the answer 7 is wrong.", "no final answer was found."]  # ...the feedback does not
    sandbox = get_verifier("sandbox").plugin.caps.feedback
    assert feedback("incorrect", "x", "failed: assert f(2) == 4", sandbox) == "failed: assert f(2) == 4"


def test_spin_pairs_put_the_reference_against_the_policys_own_sample():
    prompts = _problems(2)
    a, b = prompts["prompt_id"].to_list()
    target = dict(zip(prompts["prompt_id"], prompts["target"]))
    samples = _samples(prompts, {a: [" answer 3", target[a]], b: [target[b]]})
    pairs = reference_pairs(samples, prompts, max_per_prompt=2)
    assert pairs["prompt_id"].to_list() == [a]  # own samples equal to the reference give no pair
    assert pairs["chosen"][0] == target[a] and pairs["rejected"][0] == " answer 3"
    assert pairs["chosen_sample_idx"][0] == -1 and pairs["rejected_sample_idx"][0] == 0
    with pytest.raises(ValueError, match="needs a worked solution"):
        reference_pairs(samples, prompts.with_columns(target=pl.lit("")))


def test_judge_pairs_take_best_against_worst_and_drop_ties():
    prompts = _problems(2)
    a, b = prompts["prompt_id"].to_list()
    samples = _samples(prompts, {a: ["x", "y", "z"], b: ["p", "q"]})
    verdicts = schemas.validate(
        samples.select("round", "prompt_id", "sample_idx").with_columns(
            verdict=pl.Series(["incorrect", "correct", "correct", "incorrect", "incorrect"]),
            reward=pl.Series([0.2, 0.8, 1.0, 0.4, 0.4]),
            extracted_answer=pl.lit(None, pl.String),
            parsed_reference=pl.lit(None, pl.String),
            rationale_ok=pl.lit(None, pl.Boolean),
            reason=pl.lit(""),
            verifier=pl.lit("judge:base@1"),
            details=pl.lit(None, pl.String),
        ),
        "verdicts",
    )
    pairs = best_worst_pairs(samples, verdicts)
    assert pairs["prompt_id"].to_list() == [a]  # b's samples tie
    assert (pairs["chosen"][0], pairs["rejected"][0]) == ("z", "x")
    assert (pairs["chosen_reward"][0], pairs["rejected_reward"][0]) == (1.0, 0.2)
    assert parse_score(" 4 because", 5) == 4.0 and parse_score("9", 5) is None and parse_score("none", 5) is None


def test_balance_score_rewards_distinct_correct_answers_and_precise_selection():
    prompts = _problems(1)
    pid = prompts["prompt_id"][0]

    def judged(texts, verdicts, rewards):
        return pl.DataFrame(
            {"prompt_id": [pid] * len(texts), "completion": texts, "verdict": verdicts, "reward": rewards}
        )

    diverse = judged(["a", "b", "c", "d"], ["correct"] * 4, [1.0] * 4)
    same = judged(["a", "a ", "a", "a"], ["correct"] * 4, [1.0] * 4)
    assert balance_score(diverse, 1.0, desired=4)["balance_score"] == 1.0
    assert balance_score(same, 1.0, desired=4)["balance_score"] == pytest.approx(0.25 * 0.25)
    noisy = judged(["a", "b", "x", "y"], ["correct", "correct", "incorrect", "incorrect"], [0.9, 0.6, 0.7, 0.1])
    assert balance_score(noisy, 0.8, desired=2)["balance_score"] == pytest.approx(0.5)  # a kept, 1 of 2 wanted
    assert balance_score(noisy, 0.5, desired=2)["balance_score"] == pytest.approx(1.0 * 2 / 3)  # x slips in


def test_budgets_spend_more_samples_where_solve_rates_are_low():
    n = allocate_samples([1, 1, 2, 2, 3], n=8, rates={1: 0.9, 2: 0.1}, min_n=2, max_n=32)
    assert n[0] == n[1] == 2 and n[2] == n[3] > 8 and n[4] == 8  # 3: no rate measured, n as configured
    assert allocate_samples([1, 2], n=8, rates={}, min_n=2, max_n=32) == [8, 8]


def test_best_of_k_follows_the_score_not_the_sample_order():
    df = pl.DataFrame(
        {
            "prompt_id": ["a", "a", "b", "b"],
            "sample_idx": [0, 1, 0, 1],
            "verdict": ["incorrect", "correct", "correct", "incorrect"],
            "score": [0.1, 0.9, -1.0, 2.0],
        }
    )
    assert best_of_k(df) == 0.5


GSM = str(ROOT / "data" / "gsm8k" / "test.jsonl")


def _gsm_samples(completions: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """GSM8K's first test problem (Janet's ducks, answer 18) with the given completions."""
    prompts = make_task(TaskConfig(name="gsm8k", train={"path": GSM}, test={"path": GSM}, eval_size=1)).eval_set(set())
    n = len(completions)
    samples = schemas.validate(
        pl.DataFrame(
            {
                "round": ["r001"] * n,
                "prompt_id": [prompts["prompt_id"][0]] * n,
                "sample_idx": list(range(n)),
                "policy_id": ["base"] * n,
                "policy_hash": [""] * n,
                "prompt": [prompts["prompt"][0]] * n,
                "completion": completions,
                "backend": ["hf"] * n,
                "temperature": [1.0] * n,
                "top_p": [1.0] * n,
                "max_new_tokens": [256] * n,
                "seed": [0] * n,
            }
        ),
        "samples",
    )
    return prompts, samples


def test_rft_keeps_distinct_reasoning_paths_not_distinct_wording():
    completions = [
        "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18",
        "She has 16-3-4=<<16-3-4=9>>9 eggs left, so she earns 9*2=<<9*2=18>>18 dollars.\n#### 18",  # same path
        "She uses 3 + 4 = <<3+4=7>>7 eggs, sells 16 - 7 = <<16-7=9>>9, earning 9 * 2 = <<9*2=18>>18.\n#### 18",
        "She sells 16 eggs for 16*2=<<16*2=32>>32 dollars.\n#### 32",  # wrong
        "Eggs sold: 16 - 3 - 4 = <<16-3-4=9>>9. Money: 2 * 9 = <<2*9=18>>18.\n#### 18",  # new path (2*9, not 9*2)
    ]
    prompts, samples = _gsm_samples(completions)
    verdicts = verify(get_verifier("numeric"), prompts, samples)
    assert verdicts["verdict"].to_list() == ["correct", "correct", "correct", "incorrect", "correct"]
    rft = select_sft(samples, verdicts, max_per_prompt=4, dedup="reasoning")
    assert rft["sample_idx"].to_list() == [0, 2, 4]  # sample 1 repeats sample 0's equations in other words
    wording = select_sft(samples, verdicts, max_per_prompt=4, dedup="normalized")
    assert wording["sample_idx"].to_list() == [0, 1, 2, 4]
    assert select_sft(samples, verdicts, max_per_prompt=2, dedup="reasoning")["sample_idx"].to_list() == [0, 2]
    short = select_sft(samples, verdicts, max_per_prompt=4, dedup="reasoning", max_chars=80)
    assert short["sample_idx"].to_list() == [4]  # length bounds apply before the cap


def test_self_consistency_never_reads_references_and_audits_its_pseudo_labels():
    from filters.metrics import pseudo_label_accuracy

    completions = [
        "9 eggs, 9*2=18.\n#### 18",
        "So 18 dollars.\n#### 18",
        "#### 20",
        "16*2 = 32 #### 20",
        "The answer is 18",
    ]
    prompts, samples = _gsm_samples(completions)
    majority = get_verifier("majority")
    with_refs = verify(majority, prompts, samples)
    without = verify(majority, prompts.with_columns(reference=pl.lit("")), samples)
    assert with_refs.equals(without)  # the reference column changes nothing
    assert with_refs["verdict"].to_list() == ["correct", "correct", "incorrect", "incorrect", "correct"]
    assert set(with_refs["parsed_reference"]) == {"18"}
    assert pseudo_label_accuracy(with_refs, prompts) == {"pseudo_labeled_prompts": 1.0, "pseudo_label_accuracy": 1.0}
    wrong = prompts.with_columns(reference=pl.lit("20"))
    assert pseudo_label_accuracy(with_refs, wrong)["pseudo_label_accuracy"] == 0.0


def test_correctness_pairs_skip_zero_variance_prompts():
    from filters.pairs import correctness_pairs

    completions = ["#### 18", "#### 20", "So 18.\n#### 18", "#### 32"]
    prompts, samples = _gsm_samples(completions)
    other = samples.with_columns(prompt_id=pl.lit("gsm8k-all-wrong"))  # a prompt with no correct sample
    all_samples = pl.concat([samples, other])
    both_prompts = pl.concat(
        [prompts, prompts.with_columns(prompt_id=pl.lit("gsm8k-all-wrong"), reference=pl.lit("999"))]
    )
    verdicts = verify(get_verifier("numeric"), both_prompts, all_samples)
    pairs = correctness_pairs(all_samples, verdicts, max_per_prompt=2)
    assert pairs["prompt_id"].unique().to_list() == [prompts["prompt_id"][0]]  # the all-wrong prompt gives none
    assert list(zip(pairs["chosen_sample_idx"], pairs["rejected_sample_idx"])) == [(0, 1), (2, 3)]
    assert pairs["chosen"].to_list() == ["#### 18", "So 18.\n#### 18"] and pairs["row_id"][0].endswith("/0/1")
    assert correctness_pairs(all_samples, verdicts, max_per_prompt=1).height == 1
