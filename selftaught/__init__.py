"""Shared contracts of selftaught: table schemas, the experiment config, storage.

The layers (synth/, filters/, train/) and the Dagster wiring (assets/, pipelines/)
all import from here; this package imports none of them and never imports dagster.
"""

__version__ = "0.5.0"
