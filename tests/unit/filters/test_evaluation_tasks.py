"""Your benchmark as the held-out evaluation (evaluation.task, evaluation.lm_eval): config errors,
the task files in the round hash, an unknown lm-eval task named with the ones found. (Rounds
that run it: tests/e2e/test_evaluation_tasks.py.)"""

import pytest

from selftaught.config import ConfigError, load_config
from tests.helpers import lm_eval_benchmark as _benchmark
from tests.helpers import lm_eval_config as _config


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
