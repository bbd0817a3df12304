"""Build the Dagster Definitions for one experiment config."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.io import ParquetIOManager
from assets.resources import ExperimentResource
from assets.rounds import ROUND_ASSETS, rounds
from assets.setup import base_model, eval_prompts, warm_start_prompts
from selftaught.config import load_config

DEFAULT_CONFIG = Path(__file__).parent / "presets" / "demo.yaml"
SETUP_ASSETS = [warm_start_prompts, eval_prompts, base_model]
EXPERIMENT_TAG = "selftaught/experiment"


def build_definitions(config_path: str | Path = DEFAULT_CONFIG, storage_root: str | None = None) -> dg.Definitions:
    """Definitions for the experiment in `config_path`.

    Relative storage roots resolve against the current directory, so the CLI and
    `dagster dev` started from the same place share one storage root.
    """
    cfg = load_config(config_path)
    root = str(Path(storage_root or cfg.storage_root).resolve())
    experiment = ExperimentResource(config_path=str(Path(config_path).resolve()), storage_root=root)
    tags = {EXPERIMENT_TAG: cfg.name}
    setup_job = dg.define_asset_job("setup", selection=dg.AssetSelection.assets(*SETUP_ASSETS), tags=tags)
    round_job = dg.define_asset_job(
        "round",
        selection=dg.AssetSelection.assets(*ROUND_ASSETS),
        partitions_def=rounds,
        tags=tags,
        description="One self-training round: prompts -> samples -> verdicts -> training_set -> policy -> evaluation",
    )
    return dg.Definitions(
        assets=[*SETUP_ASSETS, *ROUND_ASSETS],
        jobs=[setup_job, round_job],
        resources={"experiment": experiment, "io_manager": ParquetIOManager(root=root)},
    )
