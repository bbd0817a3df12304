"""The compute ledger: what each round stage cost, measured where it runs, and read back from
the stages' Dagster metadata per round.

Every round asset is wrapped in `measured`: it adds `stage_wall_s`, `stage_cpu_s` (user +
system seconds of the step's process and of the child processes it waited for: generation
and sandbox subprocesses, `accelerate launch` ranks) and `stage_peak_rss_mb` (the peak
resident memory of the stage: the process's, reset when the stage starts, or a child's that
set a new high during it) to its materialization. A stage that ran the model and recorded
its `flops` and `flops_dtype` also gets `flop_per_s` over its wall seconds and `mfu`, that
rate's share of the machine's matmul ceiling in that dtype (selftaught.hardware). Each stage starts by collecting the
previous one's garbage (release_memory). GPU seconds are not measured (no GPU here); on a GPU machine the stage's
wall seconds are its GPU-holding time.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import inspect
import resource
import threading
import time

import dagster as dg

from assets.display import for_display
from assets.parent import latest_materialization

STAGE_COST = ("stage_wall_s", "stage_cpu_s", "stage_peak_rss_mb")
# what a stage produced, by the metadata key its asset writes
PRODUCED = {
    "samples": {"generated_tokens": "tokens_generated", "flops": "flops", "mfu": "gen_mfu"},
    "verdicts": {"samples": "samples_verified"},
    "training_set": {"new_rows": "kept_rows"},
    "policy": {
        "trained_tokens": "tokens_trained",
        "generated_tokens": "tokens_generated",
        "rollouts": "samples_verified",
        "flops": "flops",
        "mfu": "train_mfu",
    },
    "evaluation": {"frontier_delta": "frontier_delta", "frontier_accuracy": "frontier_accuracy"},
}


def release_memory() -> None:
    """Free what the previous stage left for the garbage collector (a trainer, a model and
    their reference cycles wait for a gc generation that may not come before the next stage
    loads its own), and hand freed heap pages back to the OS (glibc keeps them otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _reset_peak() -> bool:
    """Start the process's peak resident memory (VmHWM) over from its current size (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _own_peak_kb() -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None


class _Meter:
    """A stage's cost. Its peak memory is the stage's own: the process's peak is reset when the
    stage starts (else, with the CLI's in-process runs, every stage reported the run's high-water
    mark so far, and round 3 could only look bigger than round 1).

    With `carry` (a file under the round's work folder) every attempt of the stage in this round
    is counted: killed, failed, or finished but not recorded (a kill between the output and
    Dagster's record of it), and a later rematerialization. The file holds the seconds of all
    attempts so far (rewritten when an attempt starts, every CARRY_EVERY seconds and when it
    ends); an attempt reports the sum with its own. The ledger reads the latest
    materialization: the compute spent on that stage of the round, redone work included."""

    def __init__(self, carry=None):
        release_memory()
        self.reset = _reset_peak()
        self.kids_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        self.carry = carry
        self.before = _read_carry(carry)
        self.wall, self.cpu = time.monotonic(), self._cpu()
        self._stop, self.done = threading.Event(), False
        if carry is not None:  # at once: an attempt killed in its first seconds still counts
            _write_carry(carry, self._so_far())
            threading.Thread(target=self._keep, daemon=True, name="stage-cost-carry").start()

    @staticmethod
    def _cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def _so_far(self) -> dict[str, float]:
        return {
            "wall_s": self.before["wall_s"] + time.monotonic() - self.wall,
            "cpu_s": self.before["cpu_s"] + self._cpu() - self.cpu,
            "attempts": self.before["attempts"] + 1,
        }

    def _keep(self) -> None:
        while not self._stop.wait(CARRY_EVERY):
            _write_carry(self.carry, self._so_far())

    def abandon(self) -> None:
        """The attempt failed: leave its seconds for the next one."""
        self._stop.set()
        if self.carry is not None and not self.done:
            _write_carry(self.carry, self._so_far())

    def read(self) -> dict[str, float]:
        self._stop.set()
        self.done = True
        own = _own_peak_kb() if self.reset else None
        own = own if own is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child ever: this stage's if it grew
        peak_kb = max(own, kids if kids > self.kids_peak else 0)
        total = self._so_far()
        if self.carry is not None:  # kept: a kill before Dagster records this materialization
            _write_carry(self.carry, total)  # means a rerun, which must count this attempt too
        return {
            "stage_wall_s": round(total["wall_s"], 2),
            "stage_cpu_s": round(total["cpu_s"], 2),
            "stage_peak_rss_mb": round(peak_kb / 1024, 1),
            **({"stage_attempts": total["attempts"]} if total["attempts"] > 1 else {}),
        }


CARRY_EVERY = 2.0  # seconds: what a kill -9 can take from the ledger


def _read_carry(path) -> dict[str, float]:
    import json

    empty = {"wall_s": 0.0, "cpu_s": 0.0, "attempts": 0}
    try:
        data = json.loads(path.read_text()) if path is not None and path.is_file() else empty
        return {k: float(data.get(k, 0)) for k in empty}
    except (OSError, ValueError, AttributeError):
        return empty


def _write_carry(path, numbers: dict) -> None:
    import json

    from selftaught.files import write_text_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json.dumps(numbers), path)
    except OSError:  # the ledger is not worth failing a stage for
        pass


def _carry_file(context, kwargs):
    """<storage root>/work/costs/<round>/<stage>.json for a partitioned round stage, else None
    (not under work/<round>/: the policy stage publishes that folder as the model)."""
    experiment = kwargs.get("experiment")
    if experiment is None or not context.has_partition_key:
        return None
    try:
        store = experiment.of(context).store
    except Exception:  # noqa: BLE001 - a ledger detail must not stop the stage
        return None
    return store.root / "work" / "costs" / context.partition_key / f"{context.asset_key.path[-1]}.json"


def utilization(metadata, cost: dict) -> dict:
    """`flop_per_s` and `mfu` of a stage whose metadata holds its `flops` and `flops_dtype`."""

    def value(key):
        v = (metadata or {}).get(key)
        return getattr(v, "value", v)

    flops, dtype, wall = value("flops"), value("flops_dtype"), cost.get("stage_wall_s")
    if not flops or not dtype or not wall:
        return {}
    from selftaught.hardware import matmul_ceiling

    rate = float(flops) / wall
    return {"flop_per_s": round(rate, 1), "mfu": round(rate / matmul_ceiling(str(dtype)), 5)}


def measured(fn):
    """Wrap a round asset's body so its materialization carries the stage's cost (STAGE_COST),
    earlier unfinished attempts included, and its floats rounded for display (assets.display)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stage(context, *args, **kwargs):
            meter = _Meter(_carry_file(context, kwargs))
            try:
                for event in fn(context, *args, **kwargs):
                    if isinstance(event, dg.Output):  # the work is done once the output is yielded
                        cost = meter.read()
                        event = event.with_metadata(
                            for_display({**event.metadata, **cost, **utilization(event.metadata, cost)})
                        )
                    elif isinstance(event, dg.AssetCheckResult):
                        event = event.with_metadata(for_display(event.metadata))
                    yield event
            except BaseException:
                meter.abandon()
                raise

        return stage

    @functools.wraps(fn)
    def stage(context, *args, **kwargs):
        meter = _Meter(_carry_file(context, kwargs))
        try:
            result = fn(context, *args, **kwargs)
        except BaseException:
            meter.abandon()
            raise
        if isinstance(result, dg.MaterializeResult):
            cost = meter.read()
            return dg.MaterializeResult(
                asset_key=result.asset_key,
                metadata=for_display({**(result.metadata or {}), **cost, **utilization(result.metadata, cost)}),
                check_results=result.check_results,
                data_version=result.data_version,
                tags=result.tags,
                value=result.value,
            )
        cost = meter.read()
        meta = context.op_execution_context.get_output_metadata("result") or {}
        context.add_output_metadata(for_display({**meta, **cost, **utilization(meta, cost)}))  # replaces what was added
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

    keys = sorted(
        (
            k
            for k in instance.get_dynamic_partitions("rounds")
            if is_round_key(k) and latest_materialization(instance, dg.AssetKey([prefix, "evaluation"]), k)
        ),
        key=round_index,
    )
    return [round_costs(instance, prefix, k, stages) for k in keys]
