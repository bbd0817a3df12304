"""One training process of `train.launch` (run by `accelerate launch -m train.worker job.json`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import polars as pl

from selftaught.files import write_text_atomic
from selftaught.plugins import OBJECTIVES
from train.common import LoraSettings
from train.tracking import Tracking


def _settings(cls, data: dict):
    lora = data.get("lora")
    if isinstance(lora, dict):
        data = {**data, "lora": LoraSettings(**{**lora, "target_modules": tuple(lora["target_modules"])})}
    if "trl" in data:  # JSON made the (field, value) pairs lists
        data = {**data, "trl": tuple((k, v) for k, v in data["trl"])}
    return cls(**data)


def _tracking(data: dict | None) -> Tracking | None:
    if not data:
        return None
    return Tracking(**{**data, "report_to": tuple(data["report_to"]), "tags": tuple(map(tuple, data["tags"]))})


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    rows = pl.read_parquet(job["rows"])
    out = Path(job["out"])
    objective = OBJECTIVES.get(job["objective"]).obj
    metrics = objective.train(
        job["init"],
        rows,
        out,
        _settings(objective.settings_class, job["settings"]),
        reference=job["reference"],
        adapter_init=job["adapter_init"],
        tracking=_tracking(job.get("tracking")),
    )
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if rank == 0:
        write_text_atomic(json.dumps(metrics), out / "metrics.json")
    (out / "ranks").mkdir(exist_ok=True)
    write_text_atomic(
        json.dumps({"rank": rank, "world_size": world, "steps": metrics["steps"]}), out / "ranks" / f"rank-{rank}.json"
    )
    print(f"rank {rank} of {world} finished {metrics['steps']} steps", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except (ValueError, OSError) as exc:  # a clear one-line reason for train.launch to report
        print(f"training error: {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)
