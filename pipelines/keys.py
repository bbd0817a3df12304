"""Names that tie the pieces of an experiment together in Dagster: asset keys (prefixed
by the experiment) and the tag on its runs. Imported by build, progress, automation and
the CLI, so none of them imports another for a name."""

from __future__ import annotations

import dagster as dg

from assets.resources import CLI_TAG, EXPERIMENT_TAG
from selftaught.round_keys import key_prefix

__all__ = ["CLI_TAG", "EXPERIMENT_TAG", "asset_key", "key_prefix"]


def asset_key(experiment: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([key_prefix(experiment), name])
