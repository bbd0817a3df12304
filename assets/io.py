"""Parquet IO manager: one file per asset and round under the storage root.

Writes are atomic (temp file + rename; on an object store, one whole-object upload)
and validated against the declared table schema, so a crashed write is never read
back as a complete round.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from assets.resources import ExperimentResource
from selftaught.files import file_hash, read_parquet
from selftaught.round_keys import is_round_key, round_index

# asset name -> table schema name
TABLE_OF = {
    "eval_prompts": "prompts",
    "warm_start_prompts": "prompts",
    "prompts": "prompts",
    "samples": "samples",
    "verdicts": "verdicts",
    "training_set": "sft_rows",
    "pairs": "preference_pairs",
    "repairs": "repairs",
    "sampling_plan": "sampling_plan",
    "evaluation": "eval_results",
    "control_evaluation": "eval_results",
    "round_diff": "round_diff",
    "ledger": "ledger",
}


def round_config_metadata(cfg, partition: str | None) -> dict:
    """The config a table was written under: the round's hash (and phase) for a round's table."""
    if partition is None or not is_round_key(partition):
        return {"round_config_hash": dg.MetadataValue.text(cfg.round_hash())}
    index = round_index(partition)
    phase = cfg.phase_label(index)
    return {
        "round_config_hash": dg.MetadataValue.text(cfg.for_round(index).round_hash()),
        **({"phase": dg.MetadataValue.text(phase)} if phase else {}),
    }


class ParquetIOManager(dg.ConfigurableIOManager):
    experiment: ExperimentResource

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}, expected a polars DataFrame"
            )
        name = context.asset_key.path[-1]
        partition = context.partition_key if context.has_partition_key else None
        experiment = self.experiment.for_key(context.asset_key)
        store = experiment.store
        path = store.write_table(obj, name, partition, schema=TABLE_OF.get(name))
        context.add_output_metadata(
            {
                "path": dg.MetadataValue.path(store.where(path)),
                "rows": dg.MetadataValue.int(obj.height),
                "sha256": dg.MetadataValue.text(file_hash(path)[:16]),
                **round_config_metadata(experiment.config, partition),
            }
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        upstream = context.upstream_output
        if upstream is None:  # its asset key is read next
            raise ValueError("load_input without an upstream output")
        name = upstream.asset_key.path[-1]
        partition = context.asset_partition_key if context.has_asset_partitions else None
        store = self.experiment.for_key(upstream.asset_key).store
        path = store.table_path(name, partition)
        if not path.is_file():
            raise dg.Failure(
                description=f"{name} has no data for {partition or 'the experiment'} at "
                f"{store.where(path)}; materialize it first"
            )
        return read_parquet(path)
