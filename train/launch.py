"""Training in its own processes through `accelerate launch`, so one round's fine-tune can
use every GPU of a node (DDP, or FSDP / DeepSpeed from an accelerate config file).

The job (objective, model paths, rows, settings) is written to `<out>/job.json`; each rank
runs `python -m train.worker`; rank 0 alone writes the model and `metrics.json`; every rank
writes `ranks/rank-<i>.json` when it finishes. Provenance stays with the caller, written once.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import IO, cast

import polars as pl

from selftaught.files import write_parquet_atomic, write_text_atomic
from selftaught.procs import python_env


class LaunchError(RuntimeError):
    """The training processes failed; the message carries the tail of their output."""


def accelerate_command(processes: int, config_file: str | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--num_processes",
        str(processes),
    ]
    if config_file:
        cmd += ["--config_file", str(config_file)]
    elif processes > 1:
        cmd += ["--multi_gpu"]  # accelerate's torchrun path; on CPU the trainer picks gloo
    return cmd + list(extra)


def launch(
    objective: str,
    init: str | Path,
    rows: pl.DataFrame,
    out_dir: str | Path,
    settings,
    *,
    processes: int = 2,
    config_file: str | None = None,
    extra: tuple[str, ...] = (),
    reference: str | Path | None = None,
    adapter_init: str | Path | None = None,
    log=print,
    tracking=None,
) -> dict:
    """Run train_sft (objective sft) or train_dpo (dpo) under `accelerate launch`; returns rank 0's metrics."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in (out / "ranks").glob("rank-*.json"):
        old.unlink()
    write_parquet_atomic(rows, out / "rows.parquet")
    job = {
        "objective": objective,
        "init": str(init),
        "rows": str(out / "rows.parquet"),
        "out": str(out),
        "reference": str(reference) if reference else None,
        "adapter_init": str(adapter_init) if adapter_init else None,
        "settings": dataclasses.asdict(settings),
        "tracking": dataclasses.asdict(tracking) if tracking else None,
    }
    write_text_atomic(json.dumps(job, indent=2), out / "job.json")
    cmd = accelerate_command(processes, config_file, extra) + ["-m", "train.worker", str(out / "job.json")]
    log(f"training in {processes} processes: {' '.join(cmd[1:])}")
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=python_env()) as proc:
        for line in cast(IO[str], proc.stdout):  # stdout=PIPE: never None
            line = line.rstrip()
            tail.append(line)
            if "train step" in line or "rank " in line:
                log(line)
    if proc.returncode != 0:
        why = [line for line in tail if line.startswith("training error:")]
        raise LaunchError(
            f"accelerate launch exited with {proc.returncode}: "
            + (why[0] if why else "\n" + "\n".join(list(tail)[-20:]))
        )
    done = sorted((out / "ranks").glob("rank-*.json"))
    if len(done) != processes:
        raise LaunchError(f"{len(done)} of {processes} training processes reported finishing")
    (out / "rows.parquet").unlink()  # the training data's hash is in the provenance; no second copy
    return json.loads((out / "metrics.json").read_text())
