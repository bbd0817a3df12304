"""The recipe stages beyond plain selection, each checked on real rows through Dagster:
STaR rationalization, Re-ReST reflection, SPIN and judge pairs, B-STaR's temperature
search with difficulty-aware budgets, and V-STaR's verifier."""

import json
from pathlib import Path

import polars as pl
import pytest

from filters.feedback import feedback
from filters.judge import parse_score
from filters.metrics import allocate_samples, balance_score, best_of_k
from filters.pairs import best_worst_pairs, reference_pairs
from filters.select import select_repairs
from filters.verifiers import get_verifier, verify
from selftaught import schemas
from selftaught.config import ConfigError, load_config, parse_config
from synth.arithmetic import make_problems
from synth.repair import rationalize_attempts
from tests.helpers import copy_config, make_tiny_config, run_rounds
from train.artifact import read_provenance

ROOT = Path(__file__).resolve().parent.parent


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


# ---- STaR rationalization -----------------------------------------------------------------


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


@pytest.mark.slow
def test_star_round_rationalizes_restarts_from_base_and_grows_steps(tmp_path):
    star = load_config(ROOT / "pipelines/presets/star.yaml")
    assert star.repair.mode == "rationalize" and star.training.init == "base" and star.training.steps_growth > 1
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "star.yaml",
        max_rounds=2,
        repair={"mode": "rationalize", "n": 4, "warm_start_share": 0.5},
        sampling={"n": 1, "temperature": 1.5, "max_new_tokens": 40, "batch_size": 128},
        training__init="base",
        training__steps_growth=1.5,
        selection__accumulate=False,
    )
    store, meta, _ = run_rounds(config, tmp_path, 2)
    for key in ("r001", "r002"):
        prompts, repairs = store.read_table("prompts", key), store.read_table("repairs", key)
        verdicts = store.read_table("verdicts", key)
        solved = set(verdicts.filter(pl.col("verdict") == "correct")["prompt_id"])
        assert repairs.height > 0 and not set(repairs["prompt_id"]) & solved
        ref = dict(zip(prompts["prompt_id"], prompts["reference"]))
        assert all(f"answer is {ref[p]}." in a for p, a in zip(repairs["prompt_id"], repairs["attempt_prompt"]))
        rows = store.read_table("training_set", key).filter(pl.col("origin") == "rationalization")
        assert rows.height > 0, "no hinted rationale verified: the test would check nothing"
        assert not rows["prompt"].str.contains("Hint").any()
        ok = repairs.filter(pl.col("verdict") == "correct")
        assert set(zip(rows["prompt_id"], rows["completion"])) <= set(zip(ok["prompt_id"], ok["completion"]))
    assert meta[("policy", "r001")]["steps"] == 6 and meta[("policy", "r002")]["steps"] == 9  # 6 * 1.5
    assert read_provenance(store.model_dir("r002"))["init"] == "base"


# ---- Re-ReST reflection -------------------------------------------------------------------


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


def test_reflection_warm_start_shows_a_wrong_solution_its_feedback_and_the_right_one():
    from assets.recipes import repair_format_examples
    from synth.tasks import make_task

    cfg = parse_config(
        {
            "repair": {"mode": "reflect", "warm_start_share": 1.0},
            "task": {"warm_start": {2: 10}, "pool": {2: 5}, "eval": {2: 5}, "frontier": 2},
        }
    )
    warm = make_task(cfg.task).warm_start()
    ex = repair_format_examples(cfg, warm)
    target = dict(zip(warm["prompt"], warm["target"]))
    ref = dict(zip(warm["prompt"], warm["reference"]))
    assert 0 < ex.height <= warm.height
    for prompt, completion in ex.iter_rows():
        original = prompt.rsplit("Try again. ", 1)[1]
        assert completion == target[original]  # the right solution follows the reflection
        wrong = prompt[len(original) :].split(" Feedback: ")[0]
        assert wrong in target.values() and wrong != target[original]
        assert f"Feedback: the answer {wrong.rsplit(' ', 1)[1]} is wrong." in prompt
        assert f"answer {ref[original]} " not in prompt.split("Feedback:")[1]


@pytest.mark.slow
def test_reflection_round_links_each_repair_to_its_failed_sample(tmp_path):
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "rerest.yaml",
        max_rounds=1,
        repair={"mode": "reflect", "n": 2, "max_failed_per_prompt": 2},
        selection={"min_new_rows": 0},  # whether a reflection verifies depends on the CPU's rounding
        sampling={"n": 2, "temperature": 1.5, "max_new_tokens": 40, "batch_size": 128},
        model__tiny={
            "hidden_size": 64,
            "num_layers": 2,
            "num_heads": 2,
            "intermediate_size": 128,
            "max_positions": 192,
        },
    )
    store, meta, _ = run_rounds(config, tmp_path, 1)
    repairs, samples = store.read_table("repairs", "r001"), store.read_table("samples", "r001")
    verdicts = store.read_table("verdicts", "r001")
    assert repairs.height > 0 and set(repairs["mode"]) == {"reflection"}
    failed = repairs.join(
        samples.select("prompt_id", "sample_idx", "completion"),
        left_on=["prompt_id", "failed_sample_idx"],
        right_on=["prompt_id", "sample_idx"],
    )
    failed = failed.join(
        verdicts.select("prompt_id", "sample_idx", "verdict"),
        left_on=["prompt_id", "failed_sample_idx"],
        right_on=["prompt_id", "sample_idx"],
    )
    assert failed.height == repairs.height and (failed["verdict_right"] != "correct").all()
    for row in failed.iter_rows(named=True):  # the policy saw its failed attempt and the feedback
        assert row["completion_right"] in row["attempt_prompt"] and row["feedback"] in row["attempt_prompt"]
    assert meta[("repairs", "r001")]["attempts"] == repairs.height
    rows = store.read_table("training_set", "r001").filter(pl.col("origin") == "reflection")
    linked = rows.join(repairs, left_on=["prompt_id", "sample_idx"], right_on=["prompt_id", "repair_idx"])
    assert linked.height == rows.height
    assert (linked["repaired_sample_idx"] == linked["failed_sample_idx"]).all()
    assert (linked["verdict"] == "correct").all()
    if rows.height:  # `selftaught lineage --row` walks from the row to the sample it repairs
        from pipelines.lineage import row_chain

        row = linked.row(0, named=True)
        text = "\n".join(row_chain(store, row["row_id"]))
        assert f"repairs sample {row['failed_sample_idx']} (r001/{row['prompt_id']}/{row['failed_sample_idx']})" in text


# ---- SPIN and judge pairs -----------------------------------------------------------------


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


@pytest.mark.slow
def test_spin_round_trains_on_reference_vs_own_pairs_against_the_previous_policy(tmp_path):
    spin = load_config(ROOT / "pipelines/presets/spin.yaml")
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "spin.yaml",
        max_rounds=2,
        training={
            **load_config(make_tiny_config(tmp_path)).training.model_dump(),
            "objective": "dpo",
            "max_steps": 3,
            "learning_rate": 1e-4,
            "dpo": spin.training.dpo.model_dump(),
        },
    )
    store, meta, _ = run_rounds(config, tmp_path, 2)
    for key in ("r001", "r002"):
        pairs, prompts = store.read_table("pairs", key), store.read_table("prompts", key)
        target = dict(zip(prompts["prompt_id"], prompts["target"]))
        assert pairs.height > 0 and (pairs["chosen_sample_idx"] == -1).all()
        assert all(c == target[p] != r for p, c, r in zip(pairs["prompt_id"], pairs["chosen"], pairs["rejected"]))
    assert read_provenance(store.model_dir("r002"))["reference"]["policy_id"] == "r001"
    assert meta[("pairs", "r002")]["source"] == "reference"


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


@pytest.mark.slow
def test_self_rewarding_round_stores_judge_prompts_and_scores(tmp_path):
    tiny = load_config(make_tiny_config(tmp_path))
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "judge.yaml",
        max_rounds=1,
        # The template ends inside a sum ("Q: 2+"), so the arithmetic-trained tiny judge writes a number next
        # (ending after the completion left it free to stop at once, which it did on some CPUs); the wide
        # scale takes whatever number it writes, so scores differ within a prompt and pairs form.
        verification={
            "verifier": "judge",
            "max_unverifiable_share": 1.0,
            "judge": {
                "model": "policy",
                "template": "{prompt}{completion} Q: 2+",
                "max_score": 9999,
                "threshold": 5,
                "max_new_tokens": 6,
            },
        },
        model__tiny={
            "hidden_size": 64,
            "num_layers": 2,
            "num_heads": 2,
            "intermediate_size": 128,
            "max_positions": 160,
        },
        training={
            **tiny.training.model_dump(),
            "objective": "dpo",
            "max_steps": 2,
            "learning_rate": 1e-4,
            "dpo": {"pairs": "best_worst", "rpo_alpha": 0.0},
        },
    )
    store, meta, _ = run_rounds(config, tmp_path, 1)
    samples, verdicts = store.read_table("samples", "r001"), store.read_table("verdicts", "r001")
    scored = verdicts.filter(pl.col("verdict") != "unverifiable")
    assert scored.height > 0
    both = samples.join(verdicts, on=["round", "prompt_id", "sample_idx"])
    for row in both.iter_rows(named=True):
        d = json.loads(row["details"])
        assert d["judge_prompt"] == row["prompt"] + row["completion"] + " Q: 2+"
        assert d["score"] == parse_score(d["judge_output"], 9999)
        if d["score"] is not None:
            assert row["reward"] == pytest.approx(d["score"] / 9999)
            assert row["verdict"] == ("correct" if d["score"] >= 5 else "incorrect")
    pairs = store.read_table("pairs", "r001")
    best = scored.group_by("prompt_id").agg(hi=pl.col("reward").max(), lo=pl.col("reward").min())
    check = pairs.join(best, on="prompt_id")
    assert check.height == pairs.height
    assert (check["chosen_reward"] == check["hi"]).all() and (check["rejected_reward"] == check["lo"]).all()
    assert best.filter(pl.col("hi") > pl.col("lo")).height == pairs.height  # ties dropped, nothing else
    assert meta[("pairs", "r001")]["source"] == "best_worst"


# ---- B-STaR and difficulty-aware budgets --------------------------------------------------


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


@pytest.mark.slow
def test_bstar_round_picks_the_temperature_with_the_best_balance_score(tmp_path):
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "bstar.yaml",
        max_rounds=1,
        task={"warm_start": {1: 40}, "pool": {1: 12, 2: 6}, "eval": {1: 8, 2: 8}, "frontier": 1},
        sampling={
            "n": 4,
            "temperature": 0.7,
            "max_new_tokens": 40,
            "batch_size": 128,
            "balance": {"temperatures": [0.2, 2.0], "thresholds": [1.0], "dev_prompts": 8, "desired_correct": 2},
            "budget": {"mode": "solve_rate", "min_n": 2, "max_n": 6},
        },
    )
    store, meta, _ = run_rounds(config, tmp_path, 1)
    plan, samples = store.read_table("sampling_plan", "r001"), store.read_table("samples", "r001")
    m = meta[("sampling_plan", "r001")]
    assert m["chosen_temperature"] in (0.2, 2.0) and "balance_table" in m
    table = m["balance_table"]
    scores = {float(line.split("|")[1]): float(line.split("|")[3]) for line in table.splitlines()[2:]}
    assert m["chosen_balance_score"] == pytest.approx(max(scores.values()), abs=1e-3)
    assert set(plan["temperature"]) == {m["chosen_temperature"]} == set(samples["temperature"])
    per = samples.group_by("prompt_id").len().join(plan, on="prompt_id")
    assert (per["len"] == per["n"]).all()  # every prompt got the plan's budget
    # More samples where the base solved less (which level that is depends on the CPU's float rounding)
    n1, n2 = (plan.filter(pl.col("difficulty") == d)["n"] for d in (1, 2))
    assert n1.n_unique() == n2.n_unique() == 1
    r1, r2 = m["solve_rate_d1"], m["solve_rate_d2"]
    assert (n2[0] > n1[0]) if r2 < r1 else (n2[0] < n1[0]) if r2 > r1 else (n2[0] == n1[0])


# ---- V-STaR -------------------------------------------------------------------------------


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


@pytest.mark.slow
def test_vstar_trains_a_verifier_that_ranks_its_chosen_answers_higher(tmp_path):
    from filters.pairs import correctness_pairs
    from train.artifact import model_path
    from train.score import dpo_scores

    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "vstar.yaml",
        max_rounds=1,
        sampling={"n": 8, "temperature": 1.2, "max_new_tokens": 40, "batch_size": 160},
        training__verifier={"max_steps": 30, "learning_rate": 1e-3, "batch_size": 8},
        evaluation={"max_new_tokens": 40, "batch_size": 64, "samples_per_prompt": 4},
    )
    store, meta, _ = run_rounds(config, tmp_path, 1)
    prov = read_provenance(store.model_dir("r001"))
    assert prov["verifier"]["pairs"] > 0 and prov["verifier"]["reference"] == "base"
    m = meta[("evaluation", "r001")]
    assert 0.0 <= m["eval_best_of@4"] <= 1.0 and "eval_maj@4" in m
    pairs = correctness_pairs(store.read_table("samples", "r001"), store.read_table("verdicts", "r001"), 2)
    verifier = store.model_dir("r001") / "verifier" / "model"
    prompts = pairs["prompt"].to_list() * 2
    scores = dpo_scores(
        verifier, model_path(store.model_dir("base")), prompts, pairs["chosen"].to_list() + pairs["rejected"].to_list()
    )
    chosen, rejected = scores[: pairs.height], scores[pairs.height :]
    assert sum(c > r for c, r in zip(chosen, rejected)) / pairs.height >= 0.75


# ---- curriculum ---------------------------------------------------------------------------


def test_curriculum_opens_one_difficulty_once_its_probe_is_solved():
    from synth.curriculum import level, pool_counts

    pool = {3: 150, 4: 600, 5: 150}
    assert pool_counts(pool, 3, probe=30) == {3: 150, 4: 30}
    assert pool_counts(pool, 5, probe=30) == pool  # nothing harder to probe
    assert level(3, {3: 0.5, 4: 0.0}, open_at=0.0) == 3
    assert level(3, {3: 0.5, 4: 0.02}, open_at=0.0) == 4
    assert level(3, {3: 0.5, 4: 0.02}, open_at=0.05) == 3
    assert level(4, {}, open_at=0.0) == 4  # round 1: the frontier


@pytest.mark.slow
def test_curriculum_round_two_opens_the_probe_difficulty_only_if_round_one_solved_some(tmp_path):
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "curriculum.yaml",
        max_rounds=2,
        task={
            "warm_start": {1: 40},
            "pool": {1: 12, 2: 12},
            "eval": {1: 8, 2: 8},
            "frontier": 1,
            "curriculum": {"probe": 6},
        },
        sampling={"n": 4, "temperature": 1.0, "max_new_tokens": 40, "batch_size": 128},
    )
    store, meta, _ = run_rounds(config, tmp_path, 2)
    p1, p2 = store.read_table("prompts", "r001"), store.read_table("prompts", "r002")
    assert dict(p1.group_by("difficulty").len().iter_rows()) == {1: 12, 2: 6}
    v1 = store.read_table("verdicts", "r001").join(p1.select("prompt_id", "difficulty"), on="prompt_id")
    probe_solved = v1.filter((pl.col("difficulty") == 2) & (pl.col("verdict") == "correct")).height > 0
    want = {1: 12, 2: 12} if probe_solved else {1: 12, 2: 6}
    assert dict(p2.group_by("difficulty").len().iter_rows()) == want
    assert meta[("prompts", "r001")]["curriculum_level"] == 1
    assert meta[("prompts", "r002")]["curriculum_level"] == (2 if probe_solved else 1)
