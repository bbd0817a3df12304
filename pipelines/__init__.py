"""Composition: Dagster Definitions, jobs, the CLI and recipe presets."""
