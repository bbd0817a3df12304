"""Parquet IO manager: one file per asset and round under the storage root.

Writes are atomic (temp file + rename) and validated against the declared table
schema, so a crashed write is never read back as a complete round.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from selftaught import schemas
from selftaught.store import Store, file_hash, write_parquet_atomic

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
}


class ParquetIOManager(dg.ConfigurableIOManager):
    root: str = ""
    round_config_hash: str = ""  # ExperimentConfig.round_hash(): later runs compare it to spot stale rounds
    # several experiments: asset-key prefix -> [storage root, round_config_hash]
    experiments: dict[str, list[str]] = {}

    def _where(self, context) -> tuple[str, str | None]:
        name = context.asset_key.path[-1]
        partition = context.partition_key if context.has_partition_key else None
        return name, partition

    def _of(self, asset_key: dg.AssetKey) -> tuple[str, str]:
        if not self.experiments:
            return self.root, self.round_config_hash
        root, digest = self.experiments[asset_key.path[0]]
        return root, digest

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}, expected a polars DataFrame")
        name, partition = self._where(context)
        root, digest = self._of(context.asset_key)
        store = Store(root)
        path = store.table_path(name, partition)
        table = TABLE_OF.get(name)
        write_parquet_atomic(schemas.validate(obj, table) if table else obj, path)
        context.add_output_metadata(
            {
                "path": dg.MetadataValue.path(str(path)),
                "rows": dg.MetadataValue.int(obj.height),
                "sha256": dg.MetadataValue.text(file_hash(path)[:16]),
                "round_config_hash": dg.MetadataValue.text(digest),
            }
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        upstream = context.upstream_output
        name = upstream.asset_key.path[-1]
        partition = context.asset_partition_key if context.has_asset_partitions else None
        path = Store(self._of(upstream.asset_key)[0]).table_path(name, partition)
        if not path.is_file():
            raise dg.Failure(
                description=f"{name} has no data for {partition or 'the experiment'} at {path}; materialize it first"
            )
        return pl.read_parquet(path)
