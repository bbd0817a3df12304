"""The experiment resource: the validated config and the run's storage."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import dagster as dg

from selftaught.config import ExperimentConfig, config_files, load_config
from selftaught.lock import ExperimentBusy, ExperimentLock, RootTaken, claim_key_prefix, claim_root
from selftaught.store import Store
from synth.tasks import Task, UserTurn, make_task, user_turn
from train.gguf import resolve_base

EXPERIMENT_TAG = "selftaught/experiment"  # on every run of an experiment's jobs
CLI_TAG = "selftaught/cli"  # runs that `selftaught run` executes in its own process (under its lock)
# Runs that may be writing (a queued run writes nothing until the coordinator starts it).
_ACTIVE = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)


@lru_cache(maxsize=8)
def _load(path: str, mtimes: tuple) -> ExperimentConfig:
    return load_config(path)


def experiment_config(path: str | Path) -> ExperimentConfig:
    """The validated config at `path`, parsed once per process while it and the files it
    `extends` are unchanged (the CLI, the Definitions it builds and every step share it)."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        return load_config(path)  # its error names the missing file
    return _load(str(resolved), tuple((str(f), f.stat().st_mtime_ns) for f in config_files(resolved) if f.is_file()))


def earlier_active_run(instance, experiment: str, run_id: str | None) -> str | None:
    """A run of `experiment` that is in progress and was created before `run_id` (a UI or
    schedule run between two of its steps holds no lock, but owns the experiment), or None.
    Runs of `selftaught run` are skipped: the CLI holds the lock for its whole invocation,
    so one whose lock is free (whoever asks holds it now) was killed."""
    mine = instance.get_run_record_by_id(run_id) if run_id else None
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={EXPERIMENT_TAG: experiment}, statuses=list(_ACTIVE)), limit=20
    )
    for rec in sorted(records, key=lambda r: r.create_timestamp):
        run = rec.dagster_run
        if run.run_id == run_id or CLI_TAG in run.tags:
            continue
        if mine is None or rec.create_timestamp < mine.create_timestamp:
            return (
                f"round {run.tags.get('dagster/partition', '(setup)')} is already running in Dagster run "
                f"{run.run_id[:8]} ({run.job_name}, created {rec.create_timestamp:%Y-%m-%d %H:%M}). Rounds "
                "never overlap: wait for it, or if it is dead, terminate it in the UI (Runs -> Terminate)"
            )
    return None


class ExperimentResource(dg.ConfigurableResource):
    """Points at an experiment YAML; `storage_root` overrides the config's (absolute).

    Several experiments in one Definitions: `experiments` maps each asset-key prefix to
    [config_path, storage_root], and `of(context)` picks the running asset's.
    """

    config_path: str = ""
    storage_root: str = ""
    experiments: dict[str, list[str]] = {}

    def of(self, context) -> ExperimentResource:
        return self.for_key(context.asset_key)

    def for_key(self, asset_key: dg.AssetKey) -> ExperimentResource:
        if not self.experiments:
            return self
        prefix = asset_key.path[0]
        if prefix not in self.experiments:
            raise dg.Failure(
                description=f"no experiment config for asset prefix {prefix!r} (have {sorted(self.experiments)})"
            )
        config_path, storage_root = self.experiments[prefix]
        return ExperimentResource(config_path=config_path, storage_root=storage_root)

    # ---- one writer per experiment (selftaught.lock) ------------------------------------------

    def _touched(self, context) -> list[ExperimentResource]:
        """The experiments a run writes: this one, or in a folder of experiments those whose
        assets the run selects."""
        if not self.experiments:
            return [self]
        run = context.dagster_run
        selection = getattr(run, "asset_selection", None) if run else None
        if selection:
            prefixes = {k.path[0] for k in selection}
        else:  # a whole job: its name starts with the experiment's prefix (<prefix>_round, ...)
            job = run.job_name if run else ""
            prefixes = {p for p in self.experiments if job.startswith(f"{p}_")} or set(self.experiments)
        return [self.for_key(dg.AssetKey([p])) for p in sorted(prefixes) if p in self.experiments]

    def setup_for_execution(self, context) -> None:
        """Claim the storage root and take the experiment's lock for this step (multiprocess
        executor) or run (in-process); fail at once if another run has the experiment."""
        run = context.dagster_run
        what = (
            (
                f"Dagster run {context.run_id[:8]} ({run.job_name}"
                + (f", round {run.tags['dagster/partition']})" if "dagster/partition" in run.tags else ")")
            )
            if run
            else "a Dagster run"
        )
        for one in self._touched(context):
            cfg, store = one.config, one.store
            try:
                claim_root(store, cfg.name)
                if context.instance is not None and context.instance.root_directory:
                    claim_key_prefix(context.instance.root_directory, cfg.name, store.location())
                ExperimentLock(store.root, cfg.name).acquire(what, context.run_id)
            except (ExperimentBusy, RootTaken) as exc:
                raise dg.Failure(description=str(exc)) from None
            if context.instance is not None and (
                busy := earlier_active_run(context.instance, cfg.name, context.run_id)
            ):
                raise dg.Failure(description=f"experiment {cfg.name}: {busy}")

    def teardown_after_execution(self, context) -> None:
        for one in self._touched(context):
            ExperimentLock(one.store.root, one.config.name).release()

    @property
    def config(self) -> ExperimentConfig:
        return experiment_config(self.config_path)

    @property
    def store(self) -> Store:
        return Store.for_config(self.config, self.storage_root or None)

    def task(self, log=None, evaluation: bool = False) -> Task:
        """The experiment's task (`evaluation`: the one whose held-out rows are evaluated,
        evaluation.task when set); a chat template comes from the base model's tokenizer (a
        GGUF base is converted for it once, then read from the cache)."""
        cfg = self.config
        task = cfg.eval_task() if evaluation else cfg.task
        tokenizer = resolve_base(cfg.model.base, log) if task.chat_template else None
        return make_task(task, tokenizer)

    def user_turn(self, log=None) -> UserTurn | None:
        """The chat turn that recipe templates (hints, reflections, judge questions) fill in."""
        cfg = self.config
        return user_turn(cfg.task, resolve_base(cfg.model.base, log) if cfg.task.chat_template else None)
