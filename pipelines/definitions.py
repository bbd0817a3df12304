"""Entry point for `dagster dev -m pipelines.definitions`.

The experiment is the YAML in $SELFTAUGHT_CONFIG (default: the embedded demo).
"""

import os

from pipelines.build import DEFAULT_CONFIG, build_definitions

defs = build_definitions(os.environ.get("SELFTAUGHT_CONFIG", str(DEFAULT_CONFIG)))
