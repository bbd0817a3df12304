"""Entry point for `dagster dev -m pipelines.definitions`.

$SELFTAUGHT_CONFIG is an experiment YAML (default: the embedded demo) or a folder
of them (every experiment side by side, see build_folder_definitions).
"""

import os
from pathlib import Path

from pipelines.build import DEFAULT_CONFIG, build_definitions, build_folder_definitions

_target = os.environ.get("SELFTAUGHT_CONFIG", str(DEFAULT_CONFIG))
defs = build_folder_definitions(_target) if Path(_target).is_dir() else build_definitions(_target)
