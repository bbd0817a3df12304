"""Every experiment of a Dagster instance, from its records (`selftaught runs`): the rounds
evaluated, the last one, its frontier accuracy and the change from the round before, when it
was written, and whether a run of the experiment is in progress."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from pipelines.keys import EXPERIMENT_TAG
from pipelines.progress import IN_PROGRESS
from selftaught.round_keys import is_round_key, round_index


def experiment_rows(instance) -> list[dict]:
    """One row per experiment prefix with an evaluated round (asset <prefix>/evaluation)."""
    running = {}
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS)):
        if EXPERIMENT_TAG in run.tags:
            running[run.tags[EXPERIMENT_TAG].replace("-", "_")] = run.run_id
    rows = []
    for key in instance.get_asset_keys():
        if len(key.path) != 2 or key.path[1] != "evaluation":
            continue
        latest: dict[str, dg.EventLogRecord] = {}
        for rec in instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=10_000).records:
            partition = rec.asset_materialization.partition
            if is_round_key(partition or "") and (
                partition not in latest or rec.timestamp > latest[partition].timestamp
            ):
                latest[partition] = rec
        if not latest:
            continue
        order = sorted(latest, key=round_index)
        last = latest[order[-1]]
        if last.asset_materialization is None:  # its metadata is read next
            raise ValueError(f"materialization record {last.storage_id} has no materialization")
        meta = {k: v.value for k, v in last.asset_materialization.metadata.items()}
        rows.append(
            {
                "experiment": key.path[0],
                "rounds": len(order),
                "last_round": order[-1],
                "frontier": meta.get("frontier"),
                "frontier_accuracy": meta.get("frontier_accuracy"),
                "frontier_delta": meta.get("frontier_delta"),
                "updated": dt.datetime.fromtimestamp(last.timestamp, dt.UTC),
                "running": running.get(key.path[0]),
            }
        )
    return sorted(rows, key=lambda r: r["updated"], reverse=True)


def experiments_table(instance) -> str:
    rows = experiment_rows(instance)
    if not rows:
        return "no evaluated rounds on this Dagster instance yet (selftaught run --config FILE starts one)"
    header = ["experiment", "rounds", "last", "frontier", "accuracy", "vs prev", "updated (UTC)", "now"]
    lines = [
        [
            r["experiment"],
            str(r["rounds"]),
            r["last_round"],
            f"{r['frontier']}d" if r["frontier"] is not None else "-",
            f"{100 * r['frontier_accuracy']:.1f}%" if r["frontier_accuracy"] is not None else "-",
            f"{100 * r['frontier_delta']:+.1f}" if r["frontier_delta"] is not None else "-",
            r["updated"].strftime("%Y-%m-%d %H:%M"),
            f"running ({r['running'][:8]})" if r["running"] else "-",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)
