"""Rounds that report to every experiment tracker, offline: the trackers are the real packages;
TensorBoard event files are read back with TensorBoard's own reader, MLflow runs from its
sqlite store with `mlflow.get_run`, W&B's offline run folder and Trackio's local database are
opened after the round."""

from __future__ import annotations

import glob
import sqlite3
import uuid
from pathlib import Path

import polars as pl
import pytest
import yaml

from selftaught.config import load_config
from tests.helpers import run_rounds
from tests.helpers import tiny_config_in as _config

TRACKERS = ["tensorboard", "mlflow", "wandb", "trackio"]


@pytest.mark.slow
def test_rounds_report_to_every_tracker_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "")  # offline: never a login prompt
    project = f"tiny-{uuid.uuid4().hex[:8]}"  # Trackio's folder is the process's: a project of our own
    config = _config(
        tmp_path,
        operations__tracking={"report_to": TRACKERS, "trackio_project": project},
        training__trl={"gradient_accumulation_steps": 2, "lr_scheduler_type": "constant", "logging_steps": 2},
    )
    store, meta, _ = run_rounds(config, tmp_path, rounds=2)
    tracking = store.root / "tracking"
    policy, evaluation = meta[("policy", "r002")], meta[("evaluation", "r002")]

    # TensorBoard: the trainer's loss per step in the round's run; the rounds run has one point per round
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_events = EventAccumulator(policy["tracker_run_tensorboard"]).Reload()
    assert Path(policy["tracker_run_tensorboard"]) == tracking / "tensorboard" / "tiny" / "r002"
    assert [e.step for e in train_events.Scalars("train/loss")] == [2, 4, 6]
    rounds = EventAccumulator(evaluation["tracker_rounds_run_tensorboard"]).Reload()
    accuracy = rounds.Scalars("round/accuracy_d1")
    assert [e.step for e in accuracy] == [1, 2]
    assert accuracy[1].value == pytest.approx(evaluation["accuracy_d1"])
    kept = [e.value for e in rounds.Scalars("round/kept_rows")]
    assert kept == [meta[("training_set", k)]["new_rows"] for k in ("r001", "r002")]

    # MLflow: the round's run carries its tags and the trainer's metrics; one rounds run for both rounds
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tracking / 'mlflow.db'}")
    run = mlflow.get_run(policy["tracker_run_mlflow"])
    assert run.info.run_name == "tiny/r002" and run.info.status == "FINISHED"
    assert run.data.tags["round"] == "r002" and run.data.tags["parent_policy"] == "r001"
    assert run.data.tags["config_hash"] == load_config(config).round_hash() == policy["round_config_hash"]
    assert "loss" in run.data.metrics and run.data.params["gradient_accumulation_steps"] == "2"
    assert run.data.params["lr_scheduler_type"] == "constant"
    rounds_run = evaluation["tracker_rounds_run_mlflow"]
    assert rounds_run == meta[("evaluation", "r001")]["tracker_rounds_run_mlflow"]
    history = mlflow.MlflowClient().get_metric_history(rounds_run, "round/pass_rate")
    assert [m.step for m in history] == [1, 2]
    passed = pl.read_parquet(store.table_path("verdicts", "r002"))["verdict"].eq("correct").mean()
    assert history[1].value == pytest.approx(passed)

    # W&B offline: a run folder per round's training and per rounds log
    wandb_id = policy["tracker_run_wandb"]
    assert glob.glob(str(tracking / "wandb" / f"offline-run-*-{wandb_id}" / f"run-{wandb_id}.wandb"))
    assert len(glob.glob(str(tracking / "wandb" / "offline-run-*-tiny-rounds"))) == 2

    # Trackio: its local database has the round's run and the rounds run's points
    assert policy["tracker_run_trackio"] == f"{project}/tiny/r002"
    database = Path(policy["tracker_run_trackio_db"])
    assert database.is_file() and database == Path(evaluation["tracker_rounds_run_trackio_db"])
    with sqlite3.connect(database) as db:
        runs = {r[0] for r in db.execute("SELECT DISTINCT run_name FROM metrics")}
    assert runs == {"tiny/r001", "tiny/r002", "tiny/rounds"}

    # the provenance keeps the tracker ids of the training run, like the Dagster metadata
    prov = yaml.safe_load((store.model_dir("r002") / "provenance.json").read_text())
    assert prov["metrics"]["tracker_runs"]["mlflow"] == policy["tracker_run_mlflow"]
