"""The Dagster instance the CLI and the UI share (DAGSTER_HOME)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = "data/dagster_home"

# Rounds of one experiment must not run at once: one running run per
# experiment tag, and one per backfill (a backfill of rounds queues them in order).
# nux off: the UI opens on the experiment, not on Dagster's first-visit community modal.
DAGSTER_YAML = """\
concurrency:
  runs:
    tag_concurrency_limits:
      - key: "selftaught/experiment"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
      - key: "dagster/backfill"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
telemetry:
  enabled: false
nux:
  enabled: false
python_logs:
  managed_python_loggers:
    - selftaught
"""


def dagster_home(explicit: str | None = None) -> Path:
    """Resolve and prepare DAGSTER_HOME: explicit, else $DAGSTER_HOME, else ./data/dagster_home."""
    home = Path(explicit or os.environ.get("DAGSTER_HOME") or DEFAULT_HOME).resolve()
    if home.exists() and not home.is_dir():
        from selftaught.config import ConfigError

        raise ConfigError(f"the Dagster home {home} (--dagster-home or $DAGSTER_HOME) is a file, not a folder")
    home.mkdir(parents=True, exist_ok=True)
    yaml_path = home / "dagster.yaml"
    if not yaml_path.exists():
        yaml_path.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance(explicit: str | None = None):
    import dagster as dg

    dagster_home(explicit)
    return dg.DagsterInstance.get()
