"""Resumable, sharded generation, in this process or in a subprocess.

A job samples a prompts table shard by shard (`shard_size` prompts each) and
writes every finished shard atomically to `out_dir/shard-NNNNN.parquet`. A job
restarted with the same fingerprint (prompts, policy, backend, parameters)
skips finished shards; seeds depend only on the shard index, so the rows equal
those of an uninterrupted run. A job with a different fingerprint discards the
old shards first.

Run as a subprocess (`python -m synth.generate JOB.json`) the backend's memory
(a vLLM engine's KV cache, say) is returned to the system before training
starts in the parent process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from selftaught import schemas
from selftaught.store import write_parquet_atomic, write_text_atomic
from synth.backends import Backend, BackendError, Progress, SamplingParams, derive_seed, load_backend
from synth.sampling import to_samples

log = logging.getLogger("selftaught.synth")

JOB_FILE, MANIFEST, PROMPTS_FILE = "job.json", "manifest.json", "prompts.parquet"
OUTPUT_OPTIONS = ("model", "base_url", "dtype", "batch_size", "max_model_len")  # backend options that change rows


@dataclass(frozen=True)
class GenerationJob:
    backend: str  # hf | vllm | openai
    model_dir: str | None  # what the engine loads (unused by openai)
    params: SamplingParams
    out_dir: str
    round: str
    policy_id: str
    policy_hash: str
    shard_size: int = 256
    adapter_dir: str | None = None  # vllm: LoRA adapter applied on model_dir
    options: dict = field(default_factory=dict)  # backend constructor options; never secrets

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "GenerationJob":
        data = json.loads(text)
        data["params"] = SamplingParams(**{**data["params"], "stop": tuple(data["params"]["stop"])})
        return cls(**data)

    def fingerprint(self, prompts: pl.DataFrame) -> str:
        """What the shards depend on. Throughput-only options are left out on purpose."""
        data = dataclasses.asdict(self)
        for k in ("out_dir", "shard_size", "options"):
            data.pop(k)
        data["model_dir"] = None  # the policy hash identifies the weights, not the path
        data["adapter_dir"] = None
        # hf's batch size decides which prompts share a random stream, so it counts.
        data["engine"] = {k: v for k, v in self.options.items() if k in OUTPUT_OPTIONS}
        data["shard_size"] = self.shard_size  # shard boundaries decide the seeds
        h = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
        for pid, prompt in zip(prompts["prompt_id"], prompts["prompt"]):
            h.update(f"{pid}\0{prompt}\0".encode())
        return h.hexdigest()[:16]


def shard_path(out_dir: Path, i: int) -> Path:
    return out_dir / f"shard-{i:05d}.parquet"


def shard_params(params: SamplingParams, i: int) -> SamplingParams:
    return dataclasses.replace(params, seed=derive_seed(params.seed, "shard", i))


def prepare(job: GenerationJob, prompts: pl.DataFrame) -> int:
    """Write the job's prompts and manifest; drop shards of a different job. Returns the shard count."""
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fp = job.fingerprint(prompts)
    manifest = out / MANIFEST
    old = json.loads(manifest.read_text()).get("fingerprint") if manifest.is_file() else None
    if old != fp:
        stale = sorted(out.glob("shard-*.parquet"))
        if stale:
            log.warning("generation: %d shards in %s belong to a different job; discarding them", len(stale), out)
        for p in stale:
            p.unlink()
    n_shards = max(1, math.ceil(prompts.height / job.shard_size))
    write_parquet_atomic(prompts, out / PROMPTS_FILE)
    write_text_atomic(job.to_json(), out / JOB_FILE)
    write_text_atomic(json.dumps({"fingerprint": fp, "shards": n_shards, "prompts": prompts.height}), manifest)
    return n_shards


def pending_shards(job: GenerationJob, n_shards: int) -> list[int]:
    return [i for i in range(n_shards) if not shard_path(Path(job.out_dir), i).is_file()]


def run(job: GenerationJob, prompts: pl.DataFrame, progress: Progress | None = None,
        backend: Backend | None = None) -> pl.DataFrame:
    """Generate every missing shard in this process, then return all rows in prompt order."""
    n_shards = prepare(job, prompts)
    todo = pending_shards(job, n_shards)
    if len(todo) < n_shards:
        log.info("generation: %d of %d shards already done in %s; resuming", n_shards - len(todo), n_shards,
                 job.out_dir)
    owned = bool(todo) and backend is None
    if owned:
        backend = make_backend(job)
    try:
        _generate_shards(job, prompts, todo, n_shards, backend, progress)
    finally:
        if owned and hasattr(backend, "close"):
            backend.close()  # an in-process engine frees its memory before training starts
    return collect(job, n_shards)


def _generate_shards(job, prompts, todo, n_shards, backend, progress):
    total = prompts.height
    for i in todo:
        chunk = prompts.slice(i * job.shard_size, job.shard_size)
        params = shard_params(job.params, i)
        completions = backend.generate(chunk["prompt"].to_list(), params)
        df = to_samples(chunk, completions, params, job.round, job.policy_id, job.policy_hash, backend.name)
        write_parquet_atomic(df, shard_path(Path(job.out_dir), i))
        done = min(total, (i + 1) * job.shard_size)
        log.info("generation: shard %d/%d written (%d/%d prompts)", i + 1, n_shards, done, total)
        if progress:
            progress(done, total)


def collect(job: GenerationJob, n_shards: int) -> pl.DataFrame:
    missing = pending_shards(job, n_shards)
    if missing:
        raise RuntimeError(f"generation in {job.out_dir} is incomplete: shards {missing[:5]} missing")
    parts = [schemas.validate(pl.read_parquet(shard_path(Path(job.out_dir), i)), "samples") for i in range(n_shards)]
    return schemas.validate(pl.concat(parts), "samples")


def make_backend(job: GenerationJob) -> Backend:
    options = dict(job.options)
    if job.backend == "vllm" and job.adapter_dir:
        options["adapter_dir"] = job.adapter_dir
    return load_backend(job.backend, job.model_dir, **options)


def run_isolated(job: GenerationJob, prompts: pl.DataFrame, log_line: Callable[[str], None] = print,
                 env: dict | None = None) -> pl.DataFrame:
    """Run the job in a fresh Python process; its memory is gone when this returns."""
    n_shards = prepare(job, prompts)
    if pending_shards(job, n_shards):
        cmd = [sys.executable, "-m", "synth.generate", str(Path(job.out_dir) / JOB_FILE)]
        tail: deque[str] = deque(maxlen=30)
        root = str(Path(__file__).resolve().parent.parent)
        child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, child_env.get("PYTHONPATH")) if p)
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=child_env) as proc:
            for line in proc.stdout:
                tail.append(line.rstrip())
                if line.startswith("generation:"):
                    log_line(line.rstrip())
        if proc.returncode != 0:
            errors = [line for line in tail if line.startswith("generation: error:")]
            raise RuntimeError(f"generation subprocess exited with {proc.returncode}: "
                               + ("\n".join(errors) if errors else "last output:\n" + "\n".join(tail)))
    return collect(job, n_shards)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m synth.generate OUT_DIR/job.json", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # a parent's ignored signals must not make us unkillable
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    job = GenerationJob.from_json(Path(argv[0]).read_text())
    prompts = schemas.validate(pl.read_parquet(Path(job.out_dir) / PROMPTS_FILE), "prompts")
    try:
        run(job, prompts)
    except (BackendError, ValueError) as exc:  # expected failures: one line, no traceback
        print(f"generation: error: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
