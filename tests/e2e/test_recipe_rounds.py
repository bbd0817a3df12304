"""Each recipe's rounds through Dagster on the tiny model: STaR, Re-ReST reflection, SPIN,
self-rewarding, B-STaR, V-STaR, the curriculum, ReST-EM, self-consistency, iterative RPO and
LoRA preference rounds."""

import json

import dagster as dg
import polars as pl
import pytest

from filters.judge import parse_score
from pipelines.build import build_definitions
from selftaught.config import load_config
from tests.helpers import ROOT, copy_config, dpo_lora_config, fresh_dagster_home, make_tiny_config, run_rounds
from train.artifact import read_provenance


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


@pytest.mark.slow
def test_rest_em_fine_tunes_the_base_every_round_on_this_rounds_samples(tmp_path):
    preset = load_config(ROOT / "pipelines/presets/rest_em.yaml")
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "rest.yaml",
        max_rounds=2,
        training={**load_config(make_tiny_config(tmp_path)).training.model_dump(), "init": "base"},
        selection={**preset.selection.model_dump(), "max_per_prompt": 2},
    )
    store, _, _ = run_rounds(config, tmp_path, 2)
    r2 = read_provenance(store.model_dir("r002"))
    assert r2["init"] == "base" and r2["parent"]["policy_id"] == "r001"  # sampled by r001, trained from base
    rows = store.read_table("training_set", "r002")
    assert set(rows["source_round"]) <= {"r002", "warm_start"}  # no rows of r001
    model_rows = rows.filter(pl.col("source_round") == "r002")
    assert model_rows.group_by("prompt_id").len()["len"].max() <= 2  # at most N per problem
    samples = store.read_table("samples", "r002")
    assert set(samples["policy_id"]) == {"r001"}


@pytest.mark.slow
def test_self_consistency_round_and_sampled_evaluation_metrics(tmp_path):
    """A label-free round through Dagster reports pseudo-label accuracy; with
    evaluation.samples_per_prompt the evaluation reports pass@k, maj@k and diversity."""
    preset = load_config(ROOT / "pipelines/presets/self_consistency.yaml")
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "sc.yaml",
        max_rounds=1,
        verification=preset.verification.model_dump(),
        evaluation={"max_new_tokens": 40, "batch_size": 64, "samples_per_prompt": 4},
    )
    with fresh_dagster_home(tmp_path), dg.DagsterInstance.get() as instance:
        defs = build_definitions(config)
        assert defs.resolve_job_def("setup").execute_in_process(instance=instance).success
        instance.add_dynamic_partitions("rounds", ["r001"])
        assert defs.resolve_job_def("round").execute_in_process(instance=instance, partition_key="r001").success

        def meta(asset, key):
            rec = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(["tiny", asset]), asset_partitions=[key] if key else None),
                limit=1,
            ).records[0]
            return {k: v.value for k, v in rec.asset_materialization.metadata.items()}

        verdicts, evaluation, base = meta("verdicts", "r001"), meta("evaluation", "r001"), meta("base_model", None)
    assert 0.0 <= verdicts["pseudo_label_accuracy"] <= 1.0 and verdicts["pseudo_labeled_prompts"] >= 1
    for m in (evaluation, base):
        assert {"eval_pass@4", "eval_maj@4", "eval_distinct_answers", "eval_solve_rate_std"} <= m.keys()
        assert m["eval_pass@4"] >= m["eval_sample_accuracy"]  # pass@k can only beat the mean solve rate
    store = defs.resources["experiment"].store
    assert set(store.read_table("verdicts", "r001")["verifier"]) == {"majority@1"}


@pytest.mark.slow
def test_iterative_rpo_trains_on_pairs_against_the_previous_policy(tmp_path):
    tiny = load_config(make_tiny_config(tmp_path))
    training = {
        **tiny.training.model_dump(),
        "objective": "dpo",
        "max_steps": 4,
        "learning_rate": 1e-4,
        "dpo": {"beta": 0.1, "rpo_alpha": 1.0, "reference": "previous", "max_pairs_per_prompt": 2},
    }
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "rpo.yaml",
        max_rounds=2,
        training=training,
        sampling={"n": 8, "temperature": 1.0, "max_new_tokens": 40, "batch_size": 160},
    )
    store, _, _ = run_rounds(config, tmp_path, 2)
    pairs = store.read_table("pairs", "r002")
    assert pairs.height > 0 and (pairs["chosen"] != pairs["rejected"]).all()
    verdicts = store.read_table("verdicts", "r002").select("prompt_id", "sample_idx", "verdict")
    chosen = pairs.join(verdicts, left_on=["prompt_id", "chosen_sample_idx"], right_on=["prompt_id", "sample_idx"])
    assert set(chosen["verdict"]) == {"correct"}
    p1, p2 = read_provenance(store.model_dir("r001")), read_provenance(store.model_dir("r002"))
    assert p1["objective"] == "dpo" and p1["reference"]["policy_id"] == "base"
    assert p2["reference"] == {"policy_id": "r001", "weights_hash": p1["weights_hash"]}  # iterative: previous round
    from selftaught.files import file_hash

    assert p2["data_hash"] == file_hash(store.table_path("pairs", "r002"))[:16]


@pytest.mark.slow
def test_lora_preference_rounds_keep_one_adapter_on_the_base(tmp_path):
    """objective dpo with method lora: each round continues the previous round's adapter on
    the base weights (what vLLM serves), with the previous policy as the reference."""
    from train.artifact import adapter_path

    config = dpo_lora_config(tmp_path, max_rounds=2)
    store, _, _ = run_rounds(config, tmp_path, 2)
    base = read_provenance(store.model_dir("base"))["weights_hash"]
    p1, p2 = read_provenance(store.model_dir("r001")), read_provenance(store.model_dir("r002"))
    for p, key in ((p1, "r001"), (p2, "r002")):
        assert adapter_path(store.model_dir(key)).is_dir() and p["adapter_base_hash"] == base
        assert p["method"] == "lora" and p["objective"] == "dpo"
    assert p2["reference"] == {"policy_id": "r001", "weights_hash": p1["weights_hash"]}
    assert p1["adapter_hash"] != p2["adapter_hash"] and p1["weights_hash"] != base
