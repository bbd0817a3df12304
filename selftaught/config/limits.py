"""Bounds on config values, the config error, and the strict base every section extends."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

# Upper bounds: a typo like `n: 1e12` must be a config error, not a round that eats memory
# or overflows a 32-bit column deep in a traceback.
MAX_PROMPTS = 1_000_000  # per difficulty level, or per dataset split
MAX_SAMPLES = 4096  # per prompt
MAX_TOKENS = 131_072  # new tokens per completion, or a training row's length
MAX_STEPS = 10_000_000  # training steps of one round
MAX_BATCH = 65_536
MAX_ROUNDS = 10_000  # rounds of one experiment
MAX_ROUND_SAMPLES = 100_000_000  # samples one round generates (prompts x n)
# Lower bound of a sampling temperature: logits / 1e-300 overflow to inf and sampling crashes;
# below 0.01 sampling is greedy in all but name.
MIN_TEMPERATURE = 0.01


class ConfigError(ValueError):
    """The experiment config is missing, unreadable or invalid."""


class Strict(BaseModel):
    # inf and nan pass `gt=0`; a learning rate of .inf trained NaN weights and exited 0
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_keys_that_collide(cls, value):
        """`pool: {1: 20, '1': 1000}` are two YAML keys but one once read as numbers: one
        would silently win. Refuse mappings whose keys read the same."""
        if isinstance(value, dict):
            seen: dict[str, object] = {}
            for key in value:
                same = seen.setdefault(str(key).strip(), key)
                if same is not key:
                    raise ValueError(f"keys {same!r} and {key!r} are the same key once read; keep one")
        return value
