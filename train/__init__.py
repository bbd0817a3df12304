"""Training sets and training (TRL + PEFT), and the model artifact.
Never imports dagster."""
