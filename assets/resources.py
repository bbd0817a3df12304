"""The experiment resource: the validated config and the run's storage."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import dagster as dg

from selftaught.config import ExperimentConfig, load_config
from selftaught.store import Store
from synth.tasks import Task, UserTurn, make_task, user_turn
from train.gguf import resolve_base


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> ExperimentConfig:
    return load_config(path)


class ExperimentResource(dg.ConfigurableResource):
    """Points at an experiment YAML; `storage_root` overrides the config's (absolute).

    Several experiments in one Definitions: `experiments` maps each asset-key prefix to
    [config_path, storage_root], and `of(context)` picks the running asset's.
    """

    config_path: str = ""
    storage_root: str = ""
    experiments: dict[str, list[str]] = {}

    def of(self, context) -> "ExperimentResource":
        return self.for_key(context.asset_key)

    def for_key(self, asset_key: dg.AssetKey) -> "ExperimentResource":
        if not self.experiments:
            return self
        prefix = asset_key.path[0]
        if prefix not in self.experiments:
            raise dg.Failure(description=f"no experiment config for asset prefix {prefix!r} "
                                         f"(have {sorted(self.experiments)})")
        config_path, storage_root = self.experiments[prefix]
        return ExperimentResource(config_path=config_path, storage_root=storage_root)

    @property
    def config(self) -> ExperimentConfig:
        return _load(self.config_path, Path(self.config_path).stat().st_mtime)

    @property
    def store(self) -> Store:
        return Store.for_config(self.config, self.storage_root or None)

    def task(self, log=None) -> Task:
        """The experiment's task; a chat template comes from the base model's tokenizer
        (a GGUF base is converted for it once, then read from the cache)."""
        cfg = self.config
        tokenizer = resolve_base(cfg.model.base, log) if cfg.task.chat_template else None
        return make_task(cfg.task, tokenizer)

    def user_turn(self, log=None) -> UserTurn | None:
        """The chat turn that recipe templates (hints, reflections, judge questions) fill in."""
        cfg = self.config
        return user_turn(cfg.task, resolve_base(cfg.model.base, log) if cfg.task.chat_template else None)
