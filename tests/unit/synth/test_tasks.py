"""The generic dataset task and user tasks (synth/tasks.py): one file split by a hash of seed and
id, column mappings, held-out questions kept out of training, problem generators, a task's own
verifier file, a task class that returns a wrong table."""

import json

import pytest

from filters.verifiers import get_verifier
from selftaught.config import TaskConfig, load_config
from tests.helpers import write_dedented as write


def _table_task(tmp_path, rows: list[dict], **task):
    from synth.tasks import make_task

    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TaskConfig(name="dataset", train={"path": str(path), **task.pop("train", {})}, **task)
    return make_task(cfg)


def test_one_file_is_split_by_a_hash_of_seed_and_id(tmp_path):
    rows = [{"id": f"r{i}", "question": f"what is {i}?", "answer": str(i)} for i in range(200)]
    task = _table_task(tmp_path, rows, test_share=0.25, eval_size=1000, pool_size=400)
    held = set(task.eval_set(set())["prompt_id"])
    pool = set(task.pool(1, set())["prompt_id"])
    assert not held & pool and len(held | pool) == 200 and 30 < len(held) < 70
    assert held == set(_table_task(tmp_path, rows, test_share=0.25, eval_size=1000).eval_set(set())["prompt_id"])
    assert held != set(
        _table_task(tmp_path, rows, test_share=0.25, eval_size=1000, seed=1).eval_set(set())["prompt_id"]
    )


def test_columns_are_mapped_every_column_reaches_the_prompts_and_difficulty_is_optional(tmp_path):
    rows = [
        {"key": f"k{i}", "q": f"Convert {i} km to m.", "v": i * 1000, "unit": "m", "level": "L2"} for i in range(10)
    ]
    task = _table_task(
        tmp_path,
        rows,
        train={"question": "q", "answer": "v", "id": "key", "difficulty": "level"},
        test_share=0.3,
        template="Task: {question}",
    )
    out = task.pool(1, set())
    first = out.row(0, named=True)
    assert first["prompt"].startswith("Task: Convert") and first["difficulty"] == 2
    assert first["prompt_id"].startswith("dataset-k")
    fields = json.loads(first["fields"])
    assert fields["unit"] == "m" and fields["v"] == int(first["reference"])


def test_held_out_questions_also_in_train_rows_are_reported_and_kept_out_of_training(tmp_path):
    train = [{"id": f"t{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(20)]
    test = [
        {"id": "e1", "question": "what is 3 + 1", "answer": "4"},  # the same question, other case and id
        {"id": "e2", "question": "What is 99 + 1?", "answer": "100"},
    ]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    task = _table_task(tmp_path, train, test={"path": str(tmp_path / "test.jsonl")}, pool_size=100, warm_start_size=2)
    assert task.contamination() == {
        "contaminated_eval_rows": 1,
        "contaminated_eval_share": 0.5,
        "contaminated_eval_ids": ["e1"],
    }
    used = set(task.pool(1, set())["prompt_id"]) | set(task.warm_start()["prompt_id"])
    assert "dataset-t3" not in used and len(used) == 19


def test_a_problem_generator_is_a_procedural_task_whose_fields_reach_the_verifier(tmp_path):
    from synth.tasks import make_task

    write(
        tmp_path / "gen.py",
        """
        from selftaught.plugins import Problem, task

        @task(verifier="numeric")
        def doubling(rng, level):
            x = rng.randint(1, 10 ** level)
            return Problem(f"Double {x}.", 2 * x, f"#### {2 * x}", {"x": x})
    """,
    )
    cfg = load_config(
        write(
            tmp_path / "exp.yaml",
            "task: {name: gen.py:doubling, warm_start: {1: 2}, pool: {1: 5}, eval: {1: 3}, frontier: 1}\n",
        )
    )
    assert cfg.task.procedural() and cfg.verifier_plugin().name == "numeric"
    pool = make_task(cfg.task).pool(1, set())
    assert pool.height == 5 and pool["prompt_id"][0].startswith("doubling-")
    row = pool.row(0, named=True)
    assert json.loads(row["fields"])["x"] * 2 == int(row["reference"])


def test_a_tasks_own_verifier_file_is_found_beside_the_task_and_takes_the_plugin_settings(tmp_path):
    write(tmp_path / "code" / "checks.py", "def right(prompt, completion, reference, **row):\n    return True\n")
    write(
        tmp_path / "code" / "gen.py",
        """
        from selftaught.plugins import Problem, task

        @task(verifier="checks.py:right")
        def one(rng, level):
            return Problem(f"say {rng.randint(0, 999)}", 1)
    """,
    )
    config = write(
        tmp_path / "configs" / "exp.yaml",
        "task: {name: ../code/gen.py:one, warm_start: {1: 1}, "
        "pool: {1: 2}, eval: {1: 2}, frontier: 1}\n"
        "verification: {plugin: {timeout_seconds: 5}}\n",
    )
    cfg = load_config(config)
    assert cfg.verifier_plugin().origin.source == str((tmp_path / "code" / "checks.py").resolve())
    assert get_verifier(cfg.verifier_plugin().spec, cfg.verification).timeout == 5


def test_a_task_class_returning_a_wrong_table_is_an_error_naming_it(tmp_path):
    from synth.tasks import make_task

    write(
        tmp_path / "cls.py",
        """
        import polars as pl

        class Broken:
            def __init__(self, cfg):
                self.cfg = cfg
            def warm_start(self):
                return pl.DataFrame({"prompt": ["x"]})
            def eval_set(self, exclude):
                return []
            def pool(self, round_index, exclude):
                return "rows"
    """,
    )
    cfg = load_config(write(tmp_path / "exp.yaml", "task: {name: cls.py:Broken}\n"))
    task = make_task(cfg.task)
    with pytest.raises(ValueError, match=r"task Broken: warm_start\(\) returned a table that is not a prompts table"):
        task.warm_start()
    with pytest.raises(ValueError, match=r"task Broken: pool\(\) returned str, expected a polars DataFrame"):
        task.pool(1, set())
    assert task.eval_set(set()).height == 0
