"""Which policy generates a round's samples, found from Dagster's records.

Dagster cannot express "samples[k] depends on policy[k-1]" as an asset
dependency (a cycle), so the samples asset looks its parent up at run time and
records the link as metadata. A missing parent is a clear failure, which also
keeps a backfill of several rounds from running them out of order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from selftaught.round_keys import control_key, parent_key
from selftaught.store import Store, is_complete
from train.artifact import verified_weights_hash


@dataclass(frozen=True)
class Parent:
    policy_id: str  # "base" or a round key
    artifact: Path
    weights_hash: str
    run_id: str | None
    asset_key: dg.AssetKey | None = None


def sibling_key(context, name: str) -> dg.AssetKey:
    """The key of another asset of the same experiment (same key prefix as the running asset)."""
    return dg.AssetKey([*context.asset_key.path[:-1], name])


def latest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None):
    records_filter = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None)
    records = instance.fetch_materializations(records_filter, limit=1).records
    return records[0] if records else None


def resolve_parent(context: dg.AssetExecutionContext, store: Store, control: bool = False) -> Parent:
    """The policy round k starts from: the base model for round 1, else round k-1's policy (or,
    with `control`, round k-1's control_policy: the control's own chain)."""
    key = context.partition_key
    parent = parent_key(key)
    if parent is None:
        asset, partition, name = "base_model", None, "base"
    else:
        asset, partition, name = (
            ("control_policy", parent, control_key(parent)) if control else ("policy", parent, parent)
        )
    record = latest_materialization(context.instance, sibling_key(context, asset), partition)
    artifact = store.model_dir(name)
    what = "the base model" if parent is None else f"the {'control' if control else 'policy'} of round {parent}"
    uses = "'s control trains from" if control else " samples from"
    if record is None:
        raise dg.Failure(
            description=(
                f"round {key}{uses} {what}, which has not been materialized in this Dagster "
                f"instance. Rounds run in order: materialize {asset}"
                f"{'' if partition is None else f' for partition {partition}'} first "
                f"(or use `selftaught run`, which does)."
            )
        )
    if not is_complete(artifact):
        raise dg.Failure(
            description=f"round {key}: {what} was materialized (run {record.run_id}) but its artifact "
            f"{artifact} is missing or incomplete; rematerialize {asset}"
            f"{'' if partition is None else f' for {partition}'}."
        )
    try:
        weights = verified_weights_hash(artifact)
    except ValueError as exc:
        raise dg.Failure(
            description=f"round {key}{uses} {what}, but {exc} ({asset}"
            f"{'' if partition is None else f' for {partition}'})"
        ) from None
    return Parent(name, artifact, weights, record.run_id, record.asset_key)


def parent_metadata(parent: Parent) -> dict:
    if parent.asset_key is None:  # MetadataValue.asset would fail on it
        raise ValueError(f"parent {parent.policy_id} has no asset key")
    meta = {
        "parent_policy": dg.MetadataValue.text(parent.policy_id),
        "parent_weights_hash": dg.MetadataValue.text(parent.weights_hash),
        "parent_artifact": dg.MetadataValue.path(str(parent.artifact)),
        "parent_asset": dg.MetadataValue.asset(parent.asset_key),
    }
    if parent.run_id:
        meta["parent_run"] = dg.MetadataValue.dagster_run(parent.run_id)
    return meta
