"""Build the Dagster Definitions for one experiment config."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets import rounds as round_module
from assets import setup as setup_module
from assets import summary as summary_module
from assets.io import ParquetIOManager
from assets.resources import ExperimentResource
from assets.rounds import rounds
from selftaught.config import load_config

DEFAULT_CONFIG = Path(__file__).parent / "presets" / "demo.yaml"
EXPERIMENT_TAG = "selftaught/experiment"


def key_prefix(experiment: str) -> str:
    """Asset keys are prefixed by the experiment, so experiments sharing a Dagster
    instance never see each other's materializations ('-' is not allowed in keys)."""
    return experiment.replace("-", "_")


def asset_key(experiment: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([key_prefix(experiment), name])


def build_definitions(config_path: str | Path = DEFAULT_CONFIG, storage_root: str | None = None) -> dg.Definitions:
    """Definitions for the experiment in `config_path`.

    Relative storage roots resolve against the current directory, so the CLI and
    `dagster dev` started from the same place share one storage root.
    """
    cfg = load_config(config_path)
    root = str(Path(storage_root or cfg.storage_root).resolve())
    experiment = ExperimentResource(config_path=str(Path(config_path).resolve()), storage_root=root)
    tags = {EXPERIMENT_TAG: cfg.name}
    prefix = key_prefix(cfg.name)
    assets = dg.load_assets_from_modules([setup_module, round_module, summary_module], key_prefix=prefix)
    mine = dg.AssetSelection.key_prefixes([prefix])
    setup_job = dg.define_asset_job("setup", selection=mine & dg.AssetSelection.groups("setup"), tags=tags)
    round_job = dg.define_asset_job(
        "round",
        selection=mine & dg.AssetSelection.groups("round"),
        partitions_def=rounds,
        tags=tags,
        description="One self-training round: prompts -> samples -> verdicts -> training_set -> policy -> evaluation",
    )
    from pipelines.automation import build_automation
    from selftaught.store import Store

    schedules, sensors = build_automation(cfg, Store(root), round_job)
    summary_job = dg.define_asset_job("refresh_summary", selection=mine & dg.AssetSelection.groups("report"), tags=tags,
                                      description="Refresh the cross-round summary table and plot")
    return dg.Definitions(
        assets=assets,
        jobs=[setup_job, round_job, summary_job],
        schedules=schedules,
        sensors=sensors,
        resources={"experiment": experiment, "io_manager": ParquetIOManager(root=root, round_config_hash=cfg.round_hash())},
    )
