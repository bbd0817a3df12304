"""The control's columns in the per-round table, the line that states the recipe's gain over
it, and `compare`'s table from real Parquet files of two experiments."""

import json

import polars as pl

from filters.compare import compare_table, format_compare
from pipelines.round_table import control_line, format_table
from selftaught import schemas
from selftaught.store import Store

ROWS = [
    {"round": "base", "accuracy": {4: 0.283, 6: 0.25}},
    {
        "round": "r001",
        "samples": 384,
        "pass_rate": 0.2,
        "new_rows": 69,
        "accuracy": {4: 0.6, 6: 0.65},
        "control": {4: 0.7, 6: 0.6},
    },
]


def test_the_round_table_shows_each_difficulty_beside_its_control():
    lines = format_table(ROWS).splitlines()
    assert lines[0].split()[-10:] == ["acc", "4d", "ctrl", "4d", "acc", "6d", "ctrl", "6d", "wall", "s"]
    assert lines[2].split()[-5:] == ["28.3%", "28.3%", "25.0%", "25.0%", "-"]  # the base is its own control
    assert lines[3].split()[-5:] == ["60.0%", "70.0%", "65.0%", "60.0%", "-"]
    assert "ctrl" not in format_table([{k: v for k, v in r.items() if k != "control"} for r in ROWS])
    assert (
        control_line(ROWS, 6, "item")
        == "difficulty 6 at r001: recipe 65.0%, control 60.0% (+5.0 points over the control)"
    )
    assert control_line(ROWS, 4) == "4-digit at r001: recipe 60.0%, control 70.0% (-10.0 points over the control)"


def _evaluation(store: Store, table: str, key: str, correct: list[bool]) -> None:
    rows = [
        {
            "round": key,
            "policy_id": key,
            "prompt_id": f"p{i}",
            "difficulty": 3,
            "completion": "x",
            "extracted_answer": "1",
            "verdict": schemas.CORRECT if ok else schemas.INCORRECT,
            "rationale_ok": None,
        }
        for i, ok in enumerate(correct)
    ]
    store.write_table(pl.DataFrame(rows, schema=schemas.EVAL_RESULTS), table, key, schema="eval_results")


def test_compare_reads_each_experiments_files(tmp_path):
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    for store, right in ((a, [True, False, False, False]), (b, [True, True, True, False])):
        _evaluation(store, "evaluation", "base", [True, False, False, False])
        _evaluation(store, "evaluation", "r001", right)
        store.write_table(schemas.empty("prompts"), "prompts", "r001")
    _evaluation(b, "control_evaluation", "r001", [True, True, False, False])
    costs = b.root / "work" / "costs" / "r001"
    costs.mkdir(parents=True)
    for stage, wall in (("samples", 10.0), ("policy", 20.5), ("control_policy", 99.0)):
        (costs / f"{stage}.json").write_text(json.dumps({"wall_s": wall, "cpu_s": 1.0, "attempts": 1}))

    table = compare_table({"a": a, "b": b})
    assert table.select("round", "experiment", "accuracy_d3", "control_d3", "wall_s").rows() == [
        ("base", "a", 0.25, 0.25, None),
        ("base", "b", 0.25, 0.25, None),
        ("r001", "a", 0.25, None, None),
        ("r001", "b", 0.75, 0.5, 30.5),  # the control's seconds are not the recipe's
    ]
    printed = format_compare(table).splitlines()
    assert printed[0].split()[:6] == ["round", "experiment", "acc", "3d", "ctrl", "3d"]
    assert printed[5].split()[:4] == ["r001", "b", "75.0%", "50.0%"] and printed[5].split()[-1] == "30"
