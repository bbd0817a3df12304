"""The experiment resource: the validated config and the run's storage."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import dagster as dg

from selftaught.config import ExperimentConfig, load_config
from selftaught.store import Store


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> ExperimentConfig:
    return load_config(path)


class ExperimentResource(dg.ConfigurableResource):
    """Points at an experiment YAML; `storage_root` overrides the config's (absolute)."""

    config_path: str
    storage_root: str

    @property
    def config(self) -> ExperimentConfig:
        return _load(self.config_path, Path(self.config_path).stat().st_mtime)

    @property
    def store(self) -> Store:
        return Store(self.storage_root)
