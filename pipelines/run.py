"""`selftaught run`: the orchestration behind the command (set-up job, one round job per round
key, resumed at the first incomplete stage; failures reported by their root cause).

pipelines/cli.py parses the command line and calls `run_experiment`.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path


def wall_seconds(instance, experiment: str, key: str) -> float:
    from assets.parent import latest_materialization
    from pipelines.keys import asset_key
    from pipelines.progress import ROUND_ORDER

    runs = {rec.run_id for n in ROUND_ORDER if (rec := latest_materialization(instance, asset_key(experiment, n), key))}
    total = 0.0
    for run_id in runs:
        record = instance.get_run_record_by_id(run_id)
        if record and record.start_time and record.end_time:
            total += record.end_time - record.start_time
    return total


def _root_error(error):
    while error.cause is not None:  # Dagster wraps the step's own error: the root cause is at the bottom
        error = error.cause
    return error


def _step_errors(result) -> list:
    """(step key, error) of each step that raised; a step stopped by a failed blocking check is not one."""
    return [
        (e.step_key, e.step_failure_data.error)
        for e in result.all_events
        if e.is_step_failure
        and e.step_failure_data.error is not None
        and _root_error(e.step_failure_data.error).cls_name != "DagsterAssetCheckFailedError"
    ]


def _failure(result) -> str:
    """The one line about a failed run that names its cause. A step that raised is the cause
    (its root exception, not Dagster's wrapper); a step stopped by a blocking check that
    failed at ERROR severity names that check. A check that only warned never stands in for
    an error: it is in the UI with the rest."""
    for step, error in _step_errors(result):
        return f"{step}: {_root_error(error).message.strip()}"
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            d = event.event_specific_data
            if not d.passed and d.severity.value == "ERROR":
                reasons = d.metadata.get("top_reasons")
                top = f"; top reasons: {reasons.value}" if reasons is not None else ""
                return f"blocking check {d.check_name} on {d.asset_key.to_user_string()} failed: {d.description}{top}"
    return "the run failed; see the Dagster UI (selftaught ui) for its logs"


def _report_failure(what: str, result, debug: bool, experiment: str, log_name: str) -> None:
    """Print `<what> failed: <cause>` as the last line of stderr. The tracebacks go to a log
    file under DAGSTER_HOME/logs (printed above the line only with --debug)."""
    tracebacks = [f"step {step}:\n{error.to_string()}" for step, error in _step_errors(result)]
    where = ""
    if tracebacks and not debug:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{experiment}-{log_name}-{result.run_id[:8]}")
        log = Path(os.environ["DAGSTER_HOME"]) / "logs" / f"{name}.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("\n\n".join(tracebacks))
            where = f" [traceback: {log}; or rerun with --debug]"
        except OSError:  # a full disk may be the failure itself: the line must still come out
            where = " [rerun with --debug for the traceback]"
    print(f"{what} failed: {_failure(result)}{where}", file=sys.stderr, flush=True)


def _run_config(debug: bool) -> dict:
    """Dagster's console logger prints each failed step's traceback chain at ERROR: only with --debug."""
    return {"loggers": {"console": {"config": {"log_level": "DEBUG" if debug else "CRITICAL"}}}}


def fail_dead_cli_runs(instance, experiment: str) -> None:
    """Runs of a `selftaught run` that was killed stay "started" in Dagster's records; the
    caller holds the experiment's lock, so no CLI of it is alive: mark them failed."""
    import dagster as dg

    from pipelines.keys import CLI_TAG, EXPERIMENT_TAG

    for run in instance.get_runs(
        filters=dg.RunsFilter(
            tags={EXPERIMENT_TAG: experiment},
            statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.NOT_STARTED],
        )
    ):
        if CLI_TAG in run.tags:
            instance.report_run_failed(run, f"the selftaught run process {run.tags[CLI_TAG]} is gone (killed)")


def _materialize(job, instance, key: str, run_config, tags, experiment: str, stages, debug: bool, what: str) -> bool:
    """One run of the round job for partition `key` on `stages`; False (the cause printed) when it failed."""
    from pipelines.keys import asset_key

    result = job.execute_in_process(
        instance=instance,
        partition_key=key,
        run_config=run_config,
        raise_on_error=False,
        tags=tags,
        asset_selection=[asset_key(experiment, n) for n in stages],
    )
    if not result.success:
        _report_failure(what, result, debug, experiment, what)
    return result.success


def run_experiment(
    config: str, rounds: int | None, dagster_home_dir: str | None, debug: bool = False, progress_bars: bool = True
) -> int:
    """`selftaught run`: set-up, then rounds 1..`rounds` (default: the config's max_rounds), each
    resumed from its first incomplete stage, the per-round table printed after each, then the
    summary. Holds the experiment's lock throughout; returns the exit code (2: a bad request,
    1: a failed run)."""
    import socket

    from assets.resources import CLI_TAG, earlier_active_run, experiment_config
    from filters.summary import round_rows
    from pipelines import progress
    from pipelines.build import build_definitions
    from pipelines.instance import dagster_home, get_instance
    from pipelines.round_table import experiment_summary, format_table
    from selftaught.lock import ExperimentLock, claim_key_prefix, claim_root
    from selftaught.round_keys import round_key
    from selftaught.store import Store

    cfg = experiment_config(config)  # parsed once: build_definitions reads the same
    target = rounds or cfg.max_rounds
    from selftaught.config.limits import MAX_STEPS

    try:
        last_steps: float = cfg.for_round(target).training.steps_for(target)
    except OverflowError:
        last_steps = float("inf")
    if last_steps > MAX_STEPS:
        print(
            f"error: --rounds {target}: round {target} would train more than {MAX_STEPS:,} steps, the limit "
            f"(training.max_steps {cfg.for_round(target).training.max_steps} x steps_growth "
            f"{cfg.for_round(target).training.steps_growth:g}^"
            f"{target - 1})",
            file=sys.stderr,
        )
        return 2
    if sys.stderr.isatty() and progress_bars:
        from pipelines.progress_bars import show_progress_bars

        show_progress_bars()
    defs = build_definitions(config)
    store = Store.for_config(cfg)
    store.check_writable()
    claim_root(store, cfg.name)
    claim_key_prefix(dagster_home(dagster_home_dir), cfg.name, store.location())
    lock = ExperimentLock(store.root, cfg.name)
    lock.acquire(f"selftaught run --config {config}")  # held until this process exits
    instance = get_instance(dagster_home_dir)
    fail_dead_cli_runs(instance, cfg.name)
    busy = earlier_active_run(instance, cfg.name, None)
    if busy:
        print(f"error: experiment {cfg.name}: {busy}", file=sys.stderr)
        return 1
    print(f"experiment {cfg.name}: storage {store.location()}, dagster home {os.environ['DAGSTER_HOME']}", flush=True)
    tags = {CLI_TAG: f"{os.getpid()}@{socket.gethostname()}"}

    t0 = time.monotonic()
    print("setup: warm-start examples, eval set, base model (cached when unchanged) ...", flush=True)
    run_config = _run_config(debug)
    result = defs.resolve_job_def("setup").execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False, tags=tags
    )
    if not result.success:
        _report_failure("setup", result, debug, cfg.name, "setup")
        return 1
    print(f"setup done in {time.monotonic() - t0:.0f}s", flush=True)

    round_job = defs.resolve_job_def("round")
    keys, wall = [], {}
    for i in range(1, target + 1):
        key = round_key(i)
        keys.append(key)
        if key not in instance.get_dynamic_partitions("rounds"):
            instance.add_dynamic_partitions("rounds", [key])
        lock.note(f"selftaught run --config {config}, round {key}")
        say = lambda m: print(m, flush=True)  # noqa: E731
        todo = progress.todo(instance, cfg, key, store, log=say)
        if not todo:
            print(f"{key}: already complete", flush=True)
        else:
            resumed = "" if todo == progress.ROUND_ORDER else f" (resuming from {todo[0]})"
            print(f"{key}: running{resumed} ...", flush=True)
            if not _materialize(round_job, instance, key, run_config, tags, cfg.name, todo, debug, key):
                return 1
        control = progress.control_todo(instance, cfg, key, store, log=say)
        if control:  # its own run: the round's wall seconds stay the recipe's
            print(f"{key}: control ({cfg.evaluation.control}): {', '.join(control)} ...", flush=True)
            if not _materialize(round_job, instance, key, run_config, tags, cfg.name, control, debug, f"{key}-control"):
                return 1
        wall[key] = wall_seconds(instance, cfg.name, key)
        rows = round_rows(store, keys, wall)
        print(format_table(rows), flush=True)
    result = defs.resolve_job_def("refresh_summary").execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False, tags=tags
    )
    if not result.success:
        _report_failure("warning: the summary asset", result, debug, cfg.name, "summary")
    summary = experiment_summary(cfg, round_rows(store, keys, wall))
    print(
        f"\n{target} rounds complete; {time.monotonic() - t0:.0f}s in this invocation. "
        f"Plot: {store.where(store.root / 'summary.png')}; lineage: selftaught lineage {keys[-1]}"
    )
    if summary:
        print(summary)
    return 0
