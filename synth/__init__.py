"""Everything that produces text: task sources, prompt rendering, generation
backends and the offline tiny-model factory. Never imports dagster."""
