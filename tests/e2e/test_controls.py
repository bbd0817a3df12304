"""The control as assets (evaluation.control) on the tiny experiment, through `selftaught run`:
turned on after round 1 ran without it (round 1 is not redone, its control is added), a chain
of control models beside the recipe's, the gain in the metadata, status, the summary's plot
data; a deleted control model is retrained to the same weights; `compare` on two experiments."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import polars as pl
import pytest

from filters.compare import compare_table
from filters.metrics import accuracy_by_difficulty
from filters.select import warm_start_rows
from filters.summary import summary_table
from pipelines import progress
from pipelines.cli import main
from selftaught.config import load_config
from selftaught.store import Store
from tests.helpers import copy_config, fresh_dagster_home, tiny_config_in

pytestmark = pytest.mark.slow


def _run(config, home, capsys, *extra) -> str:
    code = main(["run", "--config", str(config), "--dagster-home", str(home), "--no-progress", *extra])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    return out.out


@pytest.fixture(scope="module")
def controlled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("control")
    off = tiny_config_in(folder)
    on = copy_config(off, folder / "tiny_control.yaml", evaluation__control="warm_start")
    return folder, off, on


def _accuracy(store: Store, table: str, key: str) -> dict[int, float]:
    return accuracy_by_difficulty(pl.read_parquet(store.table_path(table, key)))


def _next_round(home, config):
    """What the nightly schedule would request next (pipelines.progress.next_round)."""
    with fresh_dagster_home(home.parent), dg.DagsterInstance.get() as instance:
        return progress.next_round(instance, load_config(config))


def _metadata(home, asset: str, key: str) -> dict:
    with fresh_dagster_home(home.parent), dg.DagsterInstance.get() as instance:
        rec = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["tiny", asset]), asset_partitions=[key]), limit=1
        ).records[0]
        return {k: v.value for k, v in rec.asset_materialization.metadata.items()}


def test_a_control_added_to_finished_rounds_trains_its_own_chain(controlled, capsys):
    folder, off, on = controlled
    home = folder / "dagster_home"
    assert load_config(off).round_hash() == load_config(on).round_hash()  # not in the round's hash
    assert load_config(off).control_hash() is None and load_config(on).control_hash()

    _run(off, home, capsys, "--rounds", "1")
    assert _next_round(home, on) == ("r001", ["control_policy", "control_evaluation"])  # a run of its own
    store = Store.for_config(load_config(on))
    assert not (store.root / "models" / "control-r001").exists()
    recipe_r001 = json.loads((store.root / "models" / "r001" / "provenance.json").read_text())["weights_hash"]

    out = _run(on, home, capsys, "--rounds", "2")
    assert "r001: already complete" in out  # turning the control on does not redo the round
    assert "r001: control (warm_start): control_policy, control_evaluation" in out
    assert "r002: control (warm_start)" in out
    assert json.loads((store.root / "models" / "r001" / "provenance.json").read_text())["weights_hash"] == recipe_r001

    chain = {k: store.provenance(f"control-{k}") for k in ("r001", "r002")}
    assert chain["r001"]["parent"]["policy_id"] == "base"
    assert chain["r002"]["parent"]["policy_id"] == "control-r001"
    assert chain["r002"]["parent"]["weights_hash"] == chain["r001"]["weights_hash"]
    assert chain["r002"]["control_hash"] == load_config(on).control_hash()
    rows = pl.read_parquet(store.table_path("control_rows", "r002"))
    warm = warm_start_rows(pl.read_parquet(store.table_path("warm_start_prompts")))
    assert rows.sort("row_id").equals(warm.sort("row_id"))  # the warm start alone

    for key in ("r001", "r002"):
        control, recipe = _accuracy(store, "control_evaluation", key), _accuracy(store, "evaluation", key)
        meta = _metadata(home, "control_evaluation", key)
        assert meta["control_accuracy_d1"] == pytest.approx(control[1], abs=1e-6)
        assert meta["vs_control_d1"] == pytest.approx(recipe[1] - control[1], abs=1e-6)
        assert meta["base_accuracy_d1"] == pytest.approx(_accuracy(store, "evaluation", "base")[1], abs=1e-6)
        evaluation = _metadata(home, "evaluation", key)
        assert evaluation["base_accuracy_d1"] == meta["base_accuracy_d1"]  # the base point on the round plots
        for value in evaluation.values():  # floats rounded for display
            if isinstance(value, float):
                assert float(f"{value:.7g}") == value, value

    status = main(["status", "--config", str(on), "--dagster-home", str(home)])
    printed = capsys.readouterr().out
    assert status == 0 and "ctrl 1d" in printed and "points over the control" in printed
    control = _accuracy(store, "control_evaluation", "r002")[1]
    assert f"control {control:.1%}" in printed

    table = summary_table(store)  # the plot's data: base first, where recipe and control start
    assert table["round"].to_list() == ["base", "r001", "r002"]
    assert table["control_d1"][0] == table["accuracy_d1"][0] == _accuracy(store, "evaluation", "base")[1]
    assert table["control_d1"][2] == pytest.approx(control)


def test_a_deleted_control_model_is_retrained_to_the_same_weights(controlled, capsys):
    folder, _, on = controlled
    home = folder / "dagster_home"
    store = Store.for_config(load_config(on))
    before = store.provenance("control-r002")["weights_hash"]
    evaluated = pl.read_parquet(store.table_path("control_evaluation", "r002"))
    shutil.rmtree(store.root / "models" / "control-r002")
    with fresh_dagster_home(home.parent), dg.DagsterInstance.get() as instance:  # with the files checked
        assert progress.control_todo(instance, load_config(on), "r002", store) == [
            "control_policy",
            "control_evaluation",
        ]
        assert progress.control_todo(instance, load_config(on), "r001", store) == []

    out = _run(on, home, capsys, "--rounds", "2")
    assert "r002: already complete" in out and "control model" in out and "missing" in out
    assert "r001: control" not in out
    assert store.provenance("control-r002")["weights_hash"] == before
    assert pl.read_parquet(store.table_path("control_evaluation", "r002")).equals(evaluated)


def test_compare_puts_two_experiments_side_by_side(controlled, capsys):
    folder, _, on = controlled
    other_root = folder / "other_store"
    shutil.copytree(Store.for_config(load_config(on)).root, other_root)
    for table in other_root.glob("tables/*/r002.parquet"):  # the other experiment stopped after one round
        table.unlink()
    (other_root / "experiment.json").write_text(json.dumps({"experiment": "tiny_one_round"}))
    other = copy_config(on, folder / "other.yaml", name="tiny_one_round", storage_root=str(other_root))

    assert main(["compare", str(on), str(other)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:4] == ["round", "experiment", "acc", "1d"]
    rounds = [line.split()[:2] for line in printed[2:]]
    assert rounds == [
        ["base", "tiny"],
        ["base", "tiny_one_round"],
        ["r001", "tiny"],
        ["r001", "tiny_one_round"],
        ["r002", "tiny"],
    ]

    store = Store.for_config(load_config(on))
    table = compare_table({"tiny": store, "tiny_one_round": Store.for_config(load_config(other))})
    r002 = table.filter(pl.col("round") == "r002").row(0, named=True)
    assert r002["accuracy_d1"] == _accuracy(store, "evaluation", "r002")[1]
    assert r002["control_d1"] == _accuracy(store, "control_evaluation", "r002")[1]
    ts = pl.read_parquet(store.table_path("training_set", "r002"))
    assert r002["kept_rows"] == ts.filter(pl.col("source_round") == "r002").height
    assert r002["tokens_trained"] == store.provenance("r002")["metrics"]["trained_tokens"]
    costs = [json.loads(p.read_text())["wall_s"] for p in (store.root / "work/costs/r002").glob("*.json")]
    control_costs = [p for p in (store.root / "work/costs/r002").glob("control_*.json")]
    assert control_costs and r002["wall_s"] == pytest.approx(
        sum(costs) - sum(json.loads(p.read_text())["wall_s"] for p in control_costs)
    )
    assert r002["tokens_generated"] > 0
