"""Your benchmark too: the held-out evaluation as another task (a dataset file here) with its
own verifier, and EleutherAI's lm-evaluation-harness run on the base model and each round's
policy from a local task YAML (evaluation.lm_eval), through Dagster."""

import polars as pl
import pytest

from selftaught.config import load_config
from tests.helpers import LM_EVAL_PAIRS as PAIRS
from tests.helpers import lm_eval_benchmark as _benchmark
from tests.helpers import lm_eval_config as _config
from tests.helpers import run_rounds


@pytest.mark.slow
def test_a_dataset_file_is_the_held_out_set_and_lm_eval_runs_on_every_policy(tmp_path):
    bench = _benchmark(tmp_path)
    config = _config(
        tmp_path,
        task={"name": "dataset", "train": {"path": str(bench)}, "test": {"path": str(bench)}, "eval_size": 100},
        verifier="arithmetic",
        lm_eval={"tasks": ["tiny_sums"], "include_path": "lm_tasks"},
    )
    cfg = load_config(config)
    assert cfg.evaluation_verifier() == "arithmetic" and cfg.verifier_plugin().name == "arithmetic"
    store, meta, _ = run_rounds(config, tmp_path, 1)
    evals = store.read_table("eval_prompts")
    assert evals.height == len(PAIRS) and evals["prompt_id"].str.starts_with("dataset-b").all()
    results = store.read_table("evaluation", "r001")
    assert results.height == len(PAIRS) and set(results["verdict"]) <= {"correct", "incorrect"}
    for policy in ("base", "r001"):
        table = store.read_table("lm_eval", policy)
        row = table.filter(pl.col("metric") == "exact_match").row(0, named=True)
        assert row["task"] == "tiny_sums" and row["samples"] == len(PAIRS) and 0.0 <= row["value"] <= 1.0
    assert "lm_eval/tiny_sums/exact_match" in meta[("evaluation", "r001")]
    assert meta[("evaluation", "r001")]["frontier"] == 1  # picked among the evaluated difficulties
