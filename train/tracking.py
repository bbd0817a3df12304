"""Experiment trackers (operations.tracking): TensorBoard, MLflow, Weights & Biases, Trackio.

Two kinds of tracker run per experiment:
- one per round's training, named `<experiment>/<round>` and tagged with the round, the parent
  policy and the round's config hash. selftaught opens it, then TRL's own integration
  (`report_to`) logs the trainer's loss, learning rate, rewards... into it, step by step;
- one `<experiment>/rounds` run where the evaluation asset logs each round's numbers (pass
  rate, kept rows, held-out accuracy per difficulty) with the round index as the step, so the
  tracker plots rounds as the Dagster UI does.

Local by default, so nothing leaves the machine unless configured: TensorBoard event files
under the tracking folder, MLflow in `sqlite:///<folder>/mlflow.db` (MLflow's plain-file
store is in maintenance mode), W&B in offline mode (`wandb sync` uploads later), Trackio in
its own folder (TRACKIO_DIR, default ~/.cache/huggingface/trackio: Trackio reads it once, when
first imported, and TRL imports it, so it cannot follow the config). Each tracker's run id
(and Trackio's database path) is returned for the round's metadata.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

TRACKERS = ("tensorboard", "mlflow", "wandb", "trackio")
RUN_TAG = "selftaught.run"  # mlflow tag naming the experiment's rounds run, to find it again


@dataclass(frozen=True)
class Tracking:
    """Where and how one round reports; built by `from_config`, plain values only (it travels to
    `accelerate launch` workers as JSON)."""

    report_to: tuple[str, ...]
    dir: str  # local folder for tracker files
    experiment: str
    round: str
    tags: tuple[tuple[str, str], ...] = ()  # round, parent_policy, config_hash, experiment
    mlflow_uri: str | None = None  # default: sqlite:///<dir>/mlflow.db
    wandb_project: str | None = None  # default: the experiment's name
    wandb_mode: Literal["offline", "online"] = "offline"
    trackio_project: str | None = None  # default: the experiment's name

    @classmethod
    def from_config(cls, t, experiment: str, round_key: str, root: Path, tags: dict[str, str]) -> Tracking | None:
        """From `operations.tracking` (a TrackingConfig); None when it reports to nothing."""
        if not t.report_to:
            return None
        folder = Path(t.dir) if t.dir else Path(root) / "tracking"
        return cls(
            tuple(t.report_to),
            str(folder.resolve()),
            experiment,
            round_key,
            tuple(sorted({"experiment": experiment, "round": round_key, **tags}.items())),
            t.mlflow_tracking_uri,
            t.wandb_project,
            t.wandb_mode,
            t.trackio_project,
        )

    @property
    def run_name(self) -> str:
        return f"{self.experiment}/{self.round}"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{Path(self.dir) / 'mlflow.db'}"

    @property
    def project(self) -> str:
        return self.trackio_project or self.experiment

    def training_args(self) -> dict:
        """The TRL config fields that route the trainer's logs into this round's runs."""
        return {
            "report_to": list(self.report_to),
            "run_name": self.run_name,
            **({"project": self.project} if "trackio" in self.report_to else {}),
        }

    def tensorboard_dir(self, run: str) -> Path:
        return Path(self.dir) / "tensorboard" / self.experiment / run

    def env(self) -> dict[str, str]:
        """Environment the transformers integrations read (set only while a run is open)."""
        Path(self.dir).mkdir(parents=True, exist_ok=True)
        return {
            "TENSORBOARD_LOGGING_DIR": str(self.tensorboard_dir(self.round)),
            "MLFLOW_TRACKING_URI": self.mlflow_tracking_uri,
            "MLFLOW_EXPERIMENT_NAME": self.experiment,
            "WANDB_DIR": self.dir,
            "WANDB_MODE": self.wandb_mode,
            "WANDB_PROJECT": self.wandb_project or self.experiment,
            "WANDB_SILENT": "true",
        }


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def training_runs(tracking: Tracking | None, trainer):
    """Open this round's training run in every configured tracker, tagged, so the `trainer`'s
    TRL callbacks log into it; yields {tracker: run id} (filled on entry) and closes the runs on
    exit (marked failed when training raised). No tracking, or not the main process: {}."""
    if tracking is None or not tracking.report_to or not trainer.is_world_process_zero():
        yield {}
        return
    ids: dict[str, str] = {}
    tags = dict(tracking.tags)
    closers: list[Callable[[bool], object]] = []  # each takes failed: bool
    with _environment(tracking.env()):
        try:
            if "tensorboard" in tracking.report_to:
                from torch.utils.tensorboard import SummaryWriter

                folder = tracking.tensorboard_dir(tracking.round)
                with contextlib.closing(SummaryWriter(str(folder))) as writer:  # tags beside the trainer's scalars
                    writer.add_text("selftaught/tags", json.dumps(tags))
                from transformers.integrations import TensorBoardCallback

                for callback in trainer.callback_handler.callbacks:  # it read its folder when the trainer was built
                    if isinstance(callback, TensorBoardCallback):
                        callback.logging_dir = str(folder)
                ids["tensorboard"] = str(folder)
            if "mlflow" in tracking.report_to:
                import mlflow

                mlflow.set_tracking_uri(tracking.mlflow_tracking_uri)
                mlflow.set_experiment(tracking.experiment)
                run = mlflow.start_run(run_name=tracking.run_name, tags={**tags, RUN_TAG: tracking.round})
                ids["mlflow"] = run.info.run_id
                closers.append(lambda failed: mlflow.end_run(status="FAILED" if failed else "FINISHED"))
            if "wandb" in tracking.report_to:
                import wandb

                wandb_run = wandb.init(
                    project=tracking.wandb_project or tracking.experiment,
                    name=tracking.run_name,
                    tags=[f"{k}:{v}"[:64] for k, v in tags.items()],
                    config={"selftaught": tags},
                    dir=tracking.dir,
                    mode=tracking.wandb_mode,
                    reinit="finish_previous",
                )
                ids["wandb"] = wandb_run.id
                closers.append(lambda failed: wandb_run.finish(exit_code=1 if failed else 0))
            if "trackio" in tracking.report_to:
                import trackio

                trackio.init(
                    project=tracking.project,
                    name=tracking.run_name,
                    config={"selftaught": tags},
                    resume="allow",
                    embed=False,
                    auto_log_cpu=False,
                    auto_log_gpu=False,
                )
                ids["trackio"] = f"{tracking.project}/{tracking.run_name}"
                ids["trackio_db"] = str(_trackio_db(tracking.project))
                closers.append(lambda failed: _finish_trackio())
            yield ids
        except BaseException:
            for close in reversed(closers):
                close(True)
            raise
        for close in reversed(closers):
            close(False)


def _trackio_db(project: str) -> Path:
    """Trackio's database of `project`: in TRACKIO_DIR, which Trackio reads once, when first
    imported (TRL imports it), so it is the process's setting, not operations.tracking.dir."""
    from trackio.sqlite_storage import SQLiteStorage

    return SQLiteStorage.get_project_db_path(project)


def _finish_trackio() -> None:
    """Finish the open Trackio run, unless TRL's callback already did at the end of training."""
    from trackio import context_vars, finish

    if context_vars.current_run.get() is not None:
        finish()


def log_round(tracking: Tracking | None, index: int, metrics: dict[str, float]) -> dict[str, str]:
    """Log one round's numbers at step `index` in the experiment's `<experiment>/rounds` run of
    every configured tracker (created on first use, found again later); returns the run ids."""
    if tracking is None or not tracking.report_to:
        return {}
    values = {f"round/{k}": float(v) for k, v in metrics.items()}
    name, ids = f"{tracking.experiment}/rounds", {}
    tags = {"experiment": tracking.experiment, RUN_TAG: "rounds"}
    with _environment(tracking.env()):
        if "tensorboard" in tracking.report_to:
            from torch.utils.tensorboard import SummaryWriter

            folder = tracking.tensorboard_dir("rounds")
            with contextlib.closing(SummaryWriter(str(folder))) as writer:
                for key, value in values.items():
                    writer.add_scalar(key, value, index)
            ids["tensorboard"] = str(folder)
        if "mlflow" in tracking.report_to:
            import mlflow

            mlflow.set_tracking_uri(tracking.mlflow_tracking_uri)
            experiment = mlflow.set_experiment(tracking.experiment)
            found = mlflow.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`{RUN_TAG}` = 'rounds'",
                output_format="list",
                max_results=1,
            )
            with mlflow.start_run(
                run_id=found[0].info.run_id if found else None,
                run_name=None if found else name,
                tags=None if found else tags,
            ) as run:
                mlflow.log_metrics(values, step=index)
                ids["mlflow"] = run.info.run_id
        if "wandb" in tracking.report_to:
            import wandb

            run_id = re.sub(r"[^A-Za-z0-9_-]", "-", f"{tracking.experiment}-rounds")[:64]
            run = wandb.init(
                project=tracking.wandb_project or tracking.experiment,
                id=run_id,
                name=name,
                resume="allow",
                dir=tracking.dir,
                mode=tracking.wandb_mode,
                tags=["rounds"],
                reinit="finish_previous",
            )
            run.log({**values, "round": index}, step=index)
            run.finish()
            ids["wandb"] = run_id
        if "trackio" in tracking.report_to:
            import trackio

            trackio.init(
                project=tracking.project, name=name, resume="allow", embed=False, auto_log_cpu=False, auto_log_gpu=False
            )
            trackio.log(values, step=index)
            _finish_trackio()
            ids["trackio"] = f"{tracking.project}/{name}"
            ids["trackio_db"] = str(_trackio_db(tracking.project))
    return ids
