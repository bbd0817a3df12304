"""Your benchmark too: the held-out evaluation as another task (a dataset file here) with its
own verifier, and EleutherAI's lm-evaluation-harness run on the base model and each round's
policy from a local task YAML (evaluation.lm_eval), through Dagster."""

import json
import textwrap
from pathlib import Path

import polars as pl
import pytest

from selftaught.config import ConfigError, load_config
from tests.helpers import copy_config, make_tiny_config, run_rounds

PAIRS = [(a, b) for a in range(10) for b in range(10) if (a * 7 + b) % 9 == 0][:12]


def _benchmark(folder: Path) -> Path:
    rows = [{"id": f"b{a}{b}", "question": f"Q: {a}+{b}=? A:", "answer": str(a + b)} for a, b in PAIRS]
    path = folder / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = folder / "lm_tasks"
    tasks.mkdir()
    (tasks / "sums.yaml").write_text(
        textwrap.dedent(f"""
        task: tiny_sums
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {path}
        test_split: test
        output_type: generate_until
        doc_to_text: "{{{{question}}}}"
        doc_to_target: "{{{{answer}}}}"
        generation_kwargs:
          until: [";"]
          max_gen_toks: 12
          do_sample: false
        metric_list:
          - metric: exact_match
            aggregation: mean
            higher_is_better: true
    """)
    )
    return path


def _config(folder: Path, **evaluation) -> Path:
    return copy_config(
        make_tiny_config(folder),
        folder / "bench.yaml",
        max_rounds=1,
        evaluation={"max_new_tokens": 40, "batch_size": 64, **evaluation},
    )


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


def test_lm_eval_and_evaluation_task_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="evaluation.lm_eval.tasks: Tuple should have at least 1 item"):
        load_config(_config(tmp_path, lm_eval={"tasks": []}))
    with pytest.raises(ConfigError, match="evaluation.verifier: .*the majority verifier is label-free"):
        load_config(_config(tmp_path, verifier="majority"))
    with pytest.raises(ConfigError, match="evaluation.task: .*task 'dataset' needs train"):
        load_config(_config(tmp_path, task={"name": "dataset"}))


def test_the_task_files_count_in_the_round_hash(tmp_path):
    _benchmark(tmp_path)
    config = _config(tmp_path, lm_eval={"tasks": ["tiny_sums"], "include_path": "lm_tasks"})
    first = load_config(config).round_hash()
    (tmp_path / "lm_tasks" / "sums.yaml").write_text((tmp_path / "lm_tasks" / "sums.yaml").read_text() + "\n# edit\n")
    assert load_config(config).round_hash() != first


def test_an_unknown_lm_eval_task_names_the_ones_found(tmp_path):
    from filters.lm_eval import LmEvalError, LmEvalSettings, run_lm_eval

    _benchmark(tmp_path)
    with pytest.raises(LmEvalError, match=r"\['nope'\] are not tasks of lm-eval .* \(found: .*tiny_sums"):
        run_lm_eval(tmp_path, LmEvalSettings(tasks=("nope",), include_path=str(tmp_path / "lm_tasks")), "r001", "r001")
