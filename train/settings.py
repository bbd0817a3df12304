"""Trainer settings, each declared once: the training config key it comes from and the TRL
config fields it sets.

A settings class (SFTSettings, DPOSettings, GRPOSettings) is a frozen dataclass whose fields
are made with `setting(key, trl=...)`:

- `key` is the field's key in `selftaught.config.TrainingConfig` ("learning_rate",
  "grpo.num_generations"); the field's default is that key's default, so the library has no
  second set of defaults, and `from_config` reads every field from a config the same way;
- `trl` names the TRL config fields the setting fills (a name, or a name -> function of
  (value, settings) for a field computed from it);
- `per_round` computes the value of round `index` (max_steps grows, the seed moves).

From these `trl_fields(settings)` gives the trainer's kwargs and `owned_fields(cls)` the TRL
fields selftaught sets (training.trl may not name them); every key is part of the round
hash through the config it is read from (selftaught.config.experiment.round_hash).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

# TRL config fields selftaught sets whatever the objective, from no training setting.
COMMON_OWN_FIELDS = {
    "output_dir": "the round's work folder",
    "report_to": "operations.tracking.report_to",
    "run_name": "operations.tracking (<experiment>/<round>)",
    "project": "operations.tracking.trackio_project",
    "use_cpu": "the machine (a GPU when there is one)",
    "bf16": "training.bf16",
    "disable_tqdm": "selftaught's progress output",
}


# training.save_every: a checkpoint every N steps (the newest one kept), none when 0.
CHECKPOINT_FIELDS = {
    "save_strategy": lambda every, s: "steps" if every else "no",
    "save_steps": lambda every, s: every or 500,
    "save_total_limit": lambda every, s: 1,
}


def config_default(key: str):
    """The default of `key` (dotted, under TrainingConfig) as the config declares it; a
    section that defaults to None (training.grpo) gives its own section's defaults."""
    import typing

    from pydantic import BaseModel

    from selftaught.config.training import TrainingConfig

    model: type[BaseModel] = TrainingConfig
    *sections, leaf = key.split(".")
    for part in sections:
        info = model.model_fields[part]
        candidates = [info.annotation, *typing.get_args(info.annotation)]
        model = next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
    if leaf not in model.model_fields:
        raise KeyError(f"{key} is not a training config key")
    return model.model_fields[leaf].get_default(call_default_factory=True)


def setting(
    key: str,
    trl: str | tuple[str, ...] | dict[str, Callable[[Any, Any], Any]] = (),
    *,
    per_round: Callable[[Any, int], Any] | None = None,
    convert: Callable[[Any], Any] | None = None,
):
    """A settings field read from training config `key` (its default is the key's default,
    through `convert`), filling the TRL fields `trl`."""
    if isinstance(trl, str):
        trl = (trl,)
    fill = dict(trl) if isinstance(trl, dict) else {name: _value for name in trl}
    default = config_default(key)
    if convert is not None:
        default = convert(default)
    return dataclasses.field(
        default=default, metadata={"key": key, "trl": fill, "per_round": per_round, "convert": convert}
    )


def _value(value, settings):
    return value


def _read(config, key: str):
    node = config
    for part in key.split("."):
        node = getattr(node, part)
        if node is None:  # an unset optional section (training.grpo): its defaults
            return config_default(key)
    return node


def from_config(cls, config, index: int = 0, **overrides):
    """`cls` (a settings class) with every field read from `config` (a TrainingConfig) for
    round `index`; `overrides` replace fields by name."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in overrides:
            continue
        meta = f.metadata
        value = meta["per_round"](config, index) if meta["per_round"] else _read(config, meta["key"])
        values[f.name] = meta["convert"](value) if meta["convert"] else value
    return cls(**values, **overrides)


def trl_fields(settings) -> dict[str, Any]:
    """The TRL config fields `settings` fills, by their declarations."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        for name, fill in f.metadata.get("trl", {}).items():
            out[name] = fill(getattr(settings, f.name), settings)
    return out


def owned_fields(cls, **more: str) -> tuple[tuple[str, str], ...]:
    """(TRL field, the key that sets it) for every TRL field selftaught sets when training with
    `cls`: its declarations, the common ones and `more` (an objective's fixed fields)."""
    own = dict(COMMON_OWN_FIELDS)
    for f in dataclasses.fields(cls):
        for name in f.metadata.get("trl", {}):
            own.setdefault(name, f"training.{f.metadata['key']}")
    own.update(more)
    return tuple(own.items())


def steps_for_round(config, index: int) -> int:
    return config.steps_for(index)


def seed_for_round(config, index: int) -> int:
    from selftaught.seeds import training_seed

    return training_seed(config.seed, index)


def sorted_items(mapping) -> tuple[tuple[str, object], ...]:
    """training.trl as the hashable (field, value) pairs a frozen settings object holds."""
    return tuple(sorted(dict(mapping).items()))
