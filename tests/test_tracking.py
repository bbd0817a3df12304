"""Experiment trackers (operations.tracking) and TRL settings passed through (training.trl).

The trackers are the real packages, offline: TensorBoard event files are read back with
TensorBoard's own reader, MLflow runs from its sqlite store with `mlflow.get_run`, W&B's
offline run folder and Trackio's local database are opened after the round."""

from __future__ import annotations

import glob
import sqlite3
import uuid
from pathlib import Path

import polars as pl
import pytest
import yaml

from selftaught.config import ConfigError, load_config
from tests.helpers import TINY_CONFIG, copy_config, run_rounds

TRACKERS = ["tensorboard", "mlflow", "wandb", "trackio"]


def _config(tmp_path: Path, **changes) -> Path:
    return copy_config(TINY_CONFIG, tmp_path / "tiny.yaml", storage_root=str(tmp_path / "store"), **changes)


# ---- training.trl: any field of the installed TRL's config, checked at load time ------------


def test_trl_fields_pass_through_to_the_objectives_trl_config(tmp_path):
    import trl

    from train.dpo import DPOSettings
    from train.grpo import GRPOSettings, grpo_config
    from train.sft import trl_config

    extra = (
        ("gradient_accumulation_steps", 2),
        ("lr_scheduler_type", "cosine"),
        ("max_grad_norm", 0.5),
        ("optim", "adafactor"),
    )
    sft = trl_config(
        "sft",
        {"output_dir": str(tmp_path), "max_steps": 10},
        {"lr_scheduler_type": "linear"},
        extra + (("packing", True), ("padding_free", True)),
        None,
    )
    assert isinstance(sft, trl.SFTConfig)
    assert (
        sft.gradient_accumulation_steps,
        sft.lr_scheduler_type,
        sft.max_grad_norm,
        sft.optim,
        sft.packing,
        sft.padding_free,
    ) == (2, "cosine", 0.5, "adafactor", True, True)
    assert sft.report_to == [] and sft.activation_checkpointing is False  # selftaught's defaults stay
    dpo = trl_config("dpo", {"output_dir": str(tmp_path), "max_steps": 10}, {}, DPOSettings(trl=extra).trl, None)
    assert isinstance(dpo, trl.DPOConfig) and dpo.optim == "adafactor"
    grpo = grpo_config(GRPOSettings(trl=(("max_grad_norm", 0.25),)), str(tmp_path))
    assert grpo.max_grad_norm == 0.25 and grpo.logging_steps == 1


@pytest.mark.parametrize(
    "trl, objective, message",
    [
        (
            {"gradient_acumulation_steps": 2},
            "sft",
            "['gradient_acumulation_steps'] are not SFTConfig fields of the installed TRL",
        ),
        ({"max_length": 128}, "sft", "max_length (use training.max_length)"),
        ({"beta": 0.5}, "dpo", "beta (use training.dpo.beta)"),
        ({"gradient_accumulation_steps": 4}, "grpo", "one generation batch per optimizer step"),
        ({"report_to": ["wandb"]}, "sft", "report_to (use operations.tracking.report_to)"),
        ({"optim": "adamw_nope"}, "sft", "refuses it: adamw_nope is not a valid OptimizerNames"),
        ({"packing": True}, "dpo", "['packing'] are not DPOConfig fields"),
        ({"padding_free": True}, "sft", "padding_free without packing leaves training.max_length unenforced"),
    ],
)
def test_bad_trl_fields_are_config_errors_naming_them(tmp_path, trl, objective, message):
    import trl as trl_package

    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, training__trl=trl, training__objective=objective))
    assert message in str(err.value)
    if "not" in message:
        assert trl_package.__version__ in str(err.value)


def test_grpo_trl_moved_to_training_trl(tmp_path):
    with pytest.raises(ConfigError, match="grpo.trl moved to training.trl"):
        load_config(_config(tmp_path, training__objective="grpo", training__grpo={"trl": {"max_grad_norm": 1.0}}))


def test_new_keys_at_their_defaults_change_no_hash(tmp_path):
    plain = load_config(_config(tmp_path))
    spelled = load_config(
        _config(tmp_path, training__trl={}, training__dtype="auto", operations__tracking={"report_to": []})
    )
    assert plain.round_hash() == spelled.round_hash() and plain.section_hash() == spelled.section_hash()
    tracked = load_config(_config(tmp_path, operations__tracking={"report_to": ["tensorboard"]}))
    assert tracked.round_hash() == plain.round_hash()  # tracking changes no output
    assert load_config(_config(tmp_path, training__trl={"max_grad_norm": 0.5})).round_hash() != plain.round_hash()


def test_an_unknown_tracker_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="report_to"):
        load_config(_config(tmp_path, operations__tracking={"report_to": ["comet"]}))


# ---- two real rounds, every tracker on, TRL settings passed through -------------------------


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


def test_training_dtype_is_the_weights_dtype_while_training(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from train.sft import SFTSettings, torch_dtype, train_sft

    assert torch_dtype("auto") == (
        torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    )
    rows = pl.DataFrame({"prompt": ["Q: 1+2=? A:"] * 8, "completion": [" 3"] * 8})
    train_sft(tiny_model_dir, rows, tmp_path / "bf16", SFTSettings(max_steps=2, batch_size=4, dtype="bfloat16"))
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16" / "model", dtype="auto")
    assert next(saved.parameters()).dtype == torch.bfloat16
    assert load_config(_config(tmp_path, training__dtype="bfloat16")).training.dtype == "bfloat16"
    with pytest.raises(ConfigError, match="training.dtype"):
        load_config(_config(tmp_path, training__dtype="float8"))
