"""Bounds on config values, the config error, and the strict base every section extends."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


# Upper bounds: a typo like `n: 1e12` must be a config error, not a round that eats memory
# or overflows a 32-bit column deep in a traceback.
MAX_PROMPTS = 1_000_000       # per difficulty level, or per dataset split
MAX_SAMPLES = 4096            # per prompt
MAX_TOKENS = 131_072          # new tokens per completion, or a training row's length
MAX_STEPS = 10_000_000        # training steps of one round
MAX_BATCH = 65_536
MAX_ROUND_SAMPLES = 100_000_000  # samples one round generates (prompts x n)


class ConfigError(ValueError):
    """The experiment config is missing, unreadable or invalid."""


class Strict(BaseModel):
    # inf and nan pass `gt=0`; a learning rate of .inf trained NaN weights and exited 0
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
