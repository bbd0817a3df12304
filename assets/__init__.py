"""Dagster wiring: thin assets that read config, call synth/filters/train,
and attach metadata. No ML logic lives here."""
