"""Everything that judges and selects: verifiers, selection rules, metrics.
Never imports dagster."""
