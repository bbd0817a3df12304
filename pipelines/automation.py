"""Nightly schedule and auto-continue sensor for one experiment (both start stopped;
turn them on in the UI under Automation).

- `<experiment>_nightly`: at `operations.schedule_cron`, adds the next round's
  partition and launches what that round still needs; skips while a round of
  the experiment is running, before setup, and after `max_rounds`.
- `<experiment>_auto_continue`: after a round completes, starts the next one
  until `max_rounds`, or stops on a plateau of frontier accuracy
  (`operations.auto_continue`). Why it stopped is written to
  `<storage_root>/auto_continue.json` and shown as the skip reason.
"""

from __future__ import annotations

import json
import time
from typing import cast

import dagster as dg

from assets.parent import latest_materialization
from pipelines import progress
from pipelines.keys import asset_key, key_prefix
from selftaught.config import ExperimentConfig
from selftaught.store import Store


def _blocked(instance, cfg: ExperimentConfig, store: Store) -> str | None:
    """Why no round may start now, or None."""
    if latest_materialization(instance, asset_key(cfg.name, "base_model"), None) is None:
        return "setup has not run: materialize the setup job (or `selftaught run`) first"
    busy = progress.running(instance, cfg, store)
    if busy:
        return f"a run of experiment {cfg.name} is in progress ({busy[0]}); rounds never overlap"
    return None


def _request(instance, cfg: ExperimentConfig, key: str, need: list[str], why: str) -> dg.RunRequest:
    if key not in instance.get_dynamic_partitions("rounds"):
        instance.add_dynamic_partitions("rounds", [key])
    return dg.RunRequest(
        run_key=None,
        partition_key=key,
        asset_selection=[asset_key(cfg.name, n) for n in need],
        tags={"selftaught/trigger": why},
    )


def record_stop(store: Store, reason: str, history: list) -> None:
    store.write_file(
        json.dumps(
            {
                "stopped_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "reason": reason,
                "frontier_history": history,
            },
            indent=2,
        ).encode(),
        "auto_continue.json",
    )


def build_automation(cfg: ExperimentConfig, store: Store, round_job) -> tuple[list, list]:
    ops = cfg.operations
    name = key_prefix(cfg.name)

    @dg.schedule(
        name=f"{name}_nightly",
        cron_schedule=ops.schedule_cron,
        execution_timezone=ops.timezone,
        job=round_job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Start the next round of {cfg.name} at '{ops.schedule_cron}' ({ops.timezone})",
    )
    def nightly(context: dg.ScheduleEvaluationContext):
        blocked = _blocked(context.instance, cfg, store)
        if blocked:
            return dg.SkipReason(blocked)
        key, need = progress.next_round(context.instance, cfg)
        if key is None:
            return dg.SkipReason(f"all {cfg.max_rounds} rounds are complete (raise max_rounds to continue)")
        return _request(context.instance, cfg, key, need, "nightly")

    @dg.sensor(
        name=f"{name}_auto_continue",
        job=round_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Start the next round of {cfg.name} when one completes; stop at max_rounds or a plateau",
    )
    def auto_continue(context: dg.SensorEvaluationContext):
        blocked = _blocked(context.instance, cfg, store)
        if blocked:
            return dg.SkipReason(blocked)
        history = progress.frontier_history(context.instance, cfg)
        stop = progress.plateau(
            history, ops.auto_continue.min_improvement, ops.auto_continue.patience
        ) or progress.too_slow(context.instance, cfg, ops.auto_continue.min_points_per_hour)
        key, need = progress.next_round(context.instance, cfg)
        if key is None:
            stop = stop or f"max_rounds reached: all {cfg.max_rounds} rounds are complete"
        if stop:
            if context.cursor != stop:  # record once, not at every tick
                record_stop(store, stop, history)
                context.update_cursor(stop)
            return dg.SkipReason(stop)
        return _request(context.instance, cfg, cast(str, key), need, "auto_continue")  # None stopped above

    return [nightly], [auto_continue]
