"""operations: the nightly schedule, auto-continue and the Dagster executor."""

from __future__ import annotations

from typing import Literal, cast

from pydantic import Field, field_validator

from selftaught.config.limits import Strict

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names for 1.. or 0..) of the five cron fields
CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("weekday", 0, 7, DAYS),
)


def _cron_field_problem(text: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    """Why one cron field is not valid (None when it is): *, N, N-M, with /STEP, comma lists."""

    def value(word: str) -> int | None:
        if word in names:
            return names.index(word) + (low if names is MONTHS else 0)
        return int(word) if word.isdigit() else None

    for part in text.split(","):
        span, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return f"has a step {step!r} that is not a whole number of 1 or more"
        if span == "*":
            continue
        ends = span.split("-")
        numbers = [value(w) for w in ends]
        if len(ends) > 2 or any(n is None for n in numbers):
            return (
                f"is not *, a number, a range or a list ({'/'.join(names[:3]) + ' ... ' if names else ''}"
                f"numbers {low}-{high})"
            )
        bounds = cast(list[int], numbers)  # no None left: returned above
        if any(not low <= n <= high for n in bounds):
            return f"is outside {low}-{high}"
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            return "is a range that ends before it starts"
    return None


class AutoContinueConfig(Strict):
    """When the auto-continue sensor, which starts the next round once one completes, stops."""

    min_improvement: float = Field(0.01, ge=0, description="frontier accuracy gain that counts as progress")
    patience: int = Field(2, ge=1, description="stop after this many rounds without progress")
    min_points_per_hour: float | None = Field(
        None,
        description="also stop when the last round gained fewer "
        "held-out frontier points per hour of its wall time (the compute "
        "ledger's points_per_hour)",
    )


class ExecutorConfig(Strict):
    """How a run's steps execute: a Dagster executor, chosen here rather than in code."""

    kind: Literal["multiprocess", "in_process", "celery", "k8s"] = Field(
        "multiprocess",
        description="celery needs `pip install dagster-celery` and workers listening on the "
        "gpu and cpu queues; k8s needs dagster-k8s and a Kubernetes run launcher",
    )
    config: dict = Field(
        default_factory=dict,
        description="the executor's own config (celery: broker, backend; k8s: job_namespace, ...), passed through",
    )


class TrackingConfig(Strict):
    """Experiment trackers (train/tracking.py): one run per round's training, named
    <experiment>/<round>, and one <experiment>/rounds run with each round's numbers at step =
    round index. Local unless configured otherwise. Not in any hash: tracking changes no output."""

    report_to: tuple[Literal["tensorboard", "mlflow", "wandb", "trackio"], ...] = Field(
        (),
        description="trackers to log to (TRL's report_to); the packages come with `pip install 'selftaught[tracking]'`",
    )
    dir: str | None = Field(
        None,
        description="local folder for TensorBoard event files, mlflow.db and W&B "
        "offline runs (default: <storage root>/tracking); Trackio keeps its database in "
        "TRACKIO_DIR",
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="default sqlite:///<dir>/mlflow.db; or an MLflow server's http:// URL"
    )
    wandb_project: str | None = Field(None, description="default: the experiment's name")
    wandb_mode: Literal["offline", "online"] = Field(
        "offline", description="offline writes run folders that `wandb sync` uploads later"
    )
    trackio_project: str | None = Field(None, description="default: the experiment's name")

    @field_validator("report_to")
    @classmethod
    def _installed(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import importlib.util

        modules = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "trackio": "trackio"}
        missing = [name for name in v if importlib.util.find_spec(modules[name]) is None]
        if missing:
            raise ValueError(
                f"report_to {missing}: not installed here; pip install 'selftaught[tracking]' "
                "(tensorboard, mlflow-skinny, wandb, trackio)"
            )
        if len(set(v)) != len(v):
            raise ValueError(f"report_to names a tracker twice: {list(v)}")
        return v


class OperationsConfig(Strict):
    """How rounds are started and run: the nightly schedule, auto-continue, the executor, trackers, cost."""

    schedule_cron: str = Field("0 2 * * *", description="when the nightly schedule starts the next round")
    timezone: str = Field("UTC", description="IANA time zone of schedule_cron (e.g. Europe/Paris)")
    auto_continue: AutoContinueConfig = Field(
        AutoContinueConfig(), description="when the auto-continue sensor stops starting rounds"
    )
    executor: ExecutorConfig = Field(ExecutorConfig(), description="the Dagster executor that runs a run's steps")
    tracking: TrackingConfig = Field(
        TrackingConfig(),
        description="experiment trackers (TensorBoard, MLflow, W&B, "
        "Trackio): each round's training run and the rounds' numbers",
    )
    price_per_hour: float | None = Field(
        None, ge=0, description="what an hour of the machine costs (any currency): the compute ledger's cost column"
    )

    @field_validator("schedule_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"schedule_cron must have 5 fields (minute hour day month weekday), got {v!r}")
        for text, (name, low, high, names) in zip(v.split(), CRON_FIELDS):
            problem = _cron_field_problem(text.lower(), low, high, names)
            if problem:
                raise ValueError(f"schedule_cron {v!r}: the {name} field {text!r} {problem}")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone {v!r} is not an IANA time zone name (e.g. UTC, Europe/Paris, America/New_York)"
            ) from None
        return v
