"""Recipes as configurations: each preset's defining behaviour, checked on real rows."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from filters.select import select_sft
from filters.verifiers import get_verifier, verify
from pipelines.build import build_definitions
from selftaught import schemas
from selftaught.config import TaskConfig, load_config
from synth.tasks import make_task
from tests.helpers import copy_config, dpo_lora_config, fresh_dagster_home, make_tiny_config, run_rounds
from train.artifact import read_provenance

ROOT = Path(__file__).resolve().parent.parent
PRESETS = sorted((ROOT / "pipelines" / "presets").glob("*.yaml"))
GSM = str(ROOT / "data" / "gsm8k" / "test.jsonl")


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_is_a_valid_config(path):
    assert load_config(path).name == path.stem


def test_recipe_presets_set_what_defines_them():
    rest, rft = load_config(ROOT / "pipelines/presets/rest_em.yaml"), load_config(ROOT / "pipelines/presets/rft.yaml")
    assert rest.training.init == "base" and not rest.selection.accumulate and rest.selection.max_per_prompt == 4
    assert rft.selection.dedup == "reasoning" and rft.selection.max_per_prompt == 4


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
