"""operations: the nightly schedule, auto-continue and the Dagster executor."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from selftaught.config.limits import Strict


class AutoContinueConfig(Strict):
    min_improvement: float = Field(0.01, ge=0, description="frontier accuracy gain that counts as progress")
    patience: int = Field(2, ge=1, description="stop after this many rounds without progress")


class ExecutorConfig(Strict):
    """How a run's steps execute: a Dagster executor, chosen here rather than in code."""

    kind: Literal["multiprocess", "in_process", "celery", "k8s"] = Field(
        "multiprocess", description="celery needs `pip install dagster-celery` and workers listening on the "
        "gpu and cpu queues; k8s needs dagster-k8s and a Kubernetes run launcher")
    config: dict = Field(default_factory=dict, description="the executor's own config (celery: broker, backend; "
                         "k8s: job_namespace, ...), passed through")


class OperationsConfig(Strict):
    schedule_cron: str = Field("0 2 * * *", description="when the nightly schedule starts the next round")
    timezone: str = "UTC"
    auto_continue: AutoContinueConfig = AutoContinueConfig()
    executor: ExecutorConfig = ExecutorConfig()

    @field_validator("schedule_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"schedule_cron must have 5 fields (minute hour day month weekday), got {v!r}")
        return v
