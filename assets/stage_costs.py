"""The compute ledger: what each round stage cost, measured where it runs, and read back from
the stages' Dagster metadata per round.

Every round asset is wrapped in `measured`: it adds `stage_wall_s`, `stage_cpu_s` (user +
system seconds of the step's process and of the child processes it waited for: generation
and sandbox subprocesses, `accelerate launch` ranks) and `stage_peak_rss_mb` (the peak
resident memory of that process so far, or of its largest child: with the CLI's in-process
runs it is the run's peak, with the multiprocess executor the step's) to its
materialization. GPU seconds are not measured (no GPU here); on a GPU machine the stage's
wall seconds are its GPU-holding time.
"""

from __future__ import annotations

import functools
import inspect
import resource
import time

import dagster as dg

from assets.parent import latest_materialization

STAGE_COST = ("stage_wall_s", "stage_cpu_s", "stage_peak_rss_mb")
# what a stage produced, by the metadata key its asset writes
PRODUCED = {"samples": {"generated_tokens": "tokens_generated"},
            "verdicts": {"samples": "samples_verified"},
            "training_set": {"new_rows": "kept_rows"},
            "policy": {"trained_tokens": "tokens_trained", "generated_tokens": "tokens_generated",
                       "rollouts": "samples_verified"},
            "evaluation": {"frontier_delta": "frontier_delta", "frontier_accuracy": "frontier_accuracy"}}


class _Meter:
    def __init__(self):
        self.wall, self.cpu = time.monotonic(), self._cpu()

    @staticmethod
    def _cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def read(self) -> dict[str, float]:
        peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        return {"stage_wall_s": round(time.monotonic() - self.wall, 2), "stage_cpu_s": round(self._cpu() - self.cpu, 2),
                "stage_peak_rss_mb": round(peak_kb / 1024, 1)}


def measured(fn):
    """Wrap a round asset's body so its materialization carries the stage's cost (STAGE_COST)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stage(context, *args, **kwargs):
            meter = _Meter()
            for event in fn(context, *args, **kwargs):
                if isinstance(event, dg.Output):  # the work is done once the output is yielded
                    event = event.with_metadata({**event.metadata, **meter.read()})
                yield event
        return stage

    @functools.wraps(fn)
    def stage(context, *args, **kwargs):
        meter = _Meter()
        result = fn(context, *args, **kwargs)
        if isinstance(result, dg.MaterializeResult):
            return dg.MaterializeResult(asset_key=result.asset_key, metadata={**(result.metadata or {}), **meter.read()},
                                        check_results=result.check_results, data_version=result.data_version,
                                        tags=result.tags, value=result.value)
        context.add_output_metadata(meter.read())
        return result
    return stage


def round_costs(instance, prefix: str, key: str, stages: list[str]) -> list[dict]:
    """One row per stage of round `key` that has a materialization: its cost and what it made."""
    rows = []
    for stage in stages:
        rec = latest_materialization(instance, dg.AssetKey([prefix, stage]), key)
        if rec is None:
            continue
        meta = {k: v.value for k, v in rec.asset_materialization.metadata.items()}
        row = {"round": key, "stage": stage, **{k: meta.get(k) for k in STAGE_COST}}
        for source, name in PRODUCED.get(stage, {}).items():
            if meta.get(source) is not None:
                row[name] = meta[source]
        rows.append(row)
    return rows


def experiment_costs(instance, prefix: str, stages: list[str]) -> list[list[dict]]:
    """Every evaluated round's stage rows (round_costs), in round order."""
    from selftaught.round_keys import is_round_key, round_index

    keys = sorted((k for k in instance.get_dynamic_partitions("rounds") if is_round_key(k)
                   and latest_materialization(instance, dg.AssetKey([prefix, "evaluation"]), k)), key=round_index)
    return [round_costs(instance, prefix, k, stages) for k in keys]
