"""Build the Dagster Definitions for one experiment config."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from assets import control as control_module
from assets import report as report_module
from assets import rounds as round_module
from assets import setup as setup_module
from assets.io import ParquetIOManager
from assets.resources import ExperimentResource, experiment_config
from assets.rounds import rounds
from pipelines.keys import EXPERIMENT_TAG, key_prefix
from selftaught.config import ConfigError
from selftaught.store import resolve_root

DEFAULT_CONFIG = Path(__file__).parent / "presets" / "demo.yaml"


def _experiment(cfg, store, job_prefix: str = "") -> tuple[Sequence, list, list, list]:
    """Assets (keys prefixed by the experiment), jobs, schedules and sensors of one experiment."""
    from pipelines.automation import build_automation

    tags = {EXPERIMENT_TAG: cfg.name}
    prefix = key_prefix(cfg.name)
    modules = [setup_module, round_module, report_module]
    if cfg.evaluation.control is not None:  # control_policy, control_evaluation in each round
        modules.append(control_module)
    assets = dg.load_assets_from_modules(modules, key_prefix=prefix)
    mine = dg.AssetSelection.key_prefixes([prefix])
    setup_job = dg.define_asset_job(f"{job_prefix}setup", selection=mine & dg.AssetSelection.groups("setup"), tags=tags)
    round_job = dg.define_asset_job(
        f"{job_prefix}round",
        selection=mine & dg.AssetSelection.groups("round"),
        partitions_def=rounds,
        tags=tags,
        executor_def=executor(cfg.operations.executor),
        description="One self-training round: prompts -> sampling_plan -> samples -> verdicts -> repairs -> "
        "training_set / pairs -> policy -> evaluation",
    )
    summary_job = dg.define_asset_job(
        f"{job_prefix}refresh_summary",
        tags=tags,
        selection=mine & dg.AssetSelection.groups("report"),
        description="Refresh the cross-round summary table and plot",
    )
    schedules, sensors = build_automation(cfg, store, round_job)
    return assets, [setup_job, round_job, summary_job], schedules, sensors


def executor(settings) -> dg.ExecutorDefinition | None:
    """The round job's executor (operations.executor); None keeps Dagster's default (multiprocess)."""
    kind, config = settings.kind, dict(settings.config)
    if kind == "multiprocess":
        return dg.multiprocess_executor.configured(config) if config else None
    if kind == "in_process":
        return dg.in_process_executor
    try:
        if kind == "celery":
            from dagster_celery import celery_executor

            ex = celery_executor
        else:
            from dagster_k8s import k8s_job_executor

            ex = k8s_job_executor
    except ImportError:
        raise ConfigError(f"operations.executor {kind!r} needs `pip install dagster-{kind}`") from None
    return ex.configured(config) if config else ex


def build_definitions(config_path: str | Path = DEFAULT_CONFIG, storage_root: str | None = None) -> dg.Definitions:
    """Definitions for the experiment in `config_path` (jobs `setup`, `round`, `refresh_summary`).

    Relative storage roots resolve against the current directory, so the CLI and
    `dagster dev` started from the same place share one storage root.
    """
    cfg = experiment_config(config_path)
    root = resolve_root(storage_root or cfg.storage_root)
    experiment = ExperimentResource(config_path=str(Path(config_path).resolve()), storage_root=root)
    assets, jobs, schedules, sensors = _experiment(cfg, experiment.store)
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={"experiment": experiment, "io_manager": ParquetIOManager(experiment=experiment)},
    )


def build_folder_definitions(folder: str | Path) -> dg.Definitions:
    """One Definitions for every experiment YAML in `folder`, side by side in one UI: asset
    keys and jobs (`<experiment>_round`, ...) carry each experiment's name."""
    paths = sorted(Path(folder).glob("*.yaml")) + sorted(Path(folder).glob("*.yml"))
    if not paths:
        raise ConfigError(f"no experiment configs (*.yaml) in {folder}")
    all_assets: list = []
    all_jobs, all_schedules, all_sensors = [], [], []
    experiments: dict[str, list[str]] = {}
    stores: dict = {}  # name -> Store, for the comparison asset
    for path in paths:
        cfg = experiment_config(path)
        prefix = key_prefix(cfg.name)
        if prefix in experiments:
            raise ConfigError(
                f"{path}: experiment name {cfg.name!r} is also used by {experiments[prefix][0]}; "
                f"names must differ (after '-' becomes '_')"
            )
        one = ExperimentResource(config_path=str(path.resolve()), storage_root=resolve_root(cfg.storage_root))
        shared = [p for p, (_, root) in experiments.items() if root == one.storage_root]
        if shared:
            raise ConfigError(
                f"{path}: experiment {cfg.name!r} has the storage_root of experiment {shared[0]!r} "
                f"({one.storage_root}); each experiment needs its own"
            )
        experiments[prefix] = [one.config_path, one.storage_root]
        stores[cfg.name] = one.store
        assets, jobs, schedules, sensors = _experiment(cfg, one.store, job_prefix=f"{prefix}_")
        all_assets += assets
        all_jobs += jobs
        all_schedules += schedules
        all_sensors += sensors
    experiment = ExperimentResource(experiments=experiments)
    all_assets.append(report_module.comparison(stores))
    return dg.Definitions(
        assets=all_assets,
        jobs=all_jobs,
        schedules=all_schedules,
        sensors=all_sensors,
        resources={"experiment": experiment, "io_manager": ParquetIOManager(experiment=experiment)},
    )
