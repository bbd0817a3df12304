"""Resumable, sharded generation, in this process or in a subprocess.

A job samples a prompts table shard by shard (`shard_size` prompts each) and
writes every finished shard atomically to `out_dir/shard-NNNNN.parquet`. A job
restarted with the same fingerprint (prompts, policy, backend, parameters)
skips finished shards; seeds depend only on the shard index, so the rows equal
those of an uninterrupted run. A job with a different fingerprint discards the
old shards first.

Run as a subprocess (`python -m synth.generate JOB.json`) the backend's memory
(a vLLM engine's KV cache, say) is returned to the system before training
starts in the parent process. The subprocess may run another interpreter
(sampling.vllm.python): vLLM's CPU build lives in an environment of its own.
With `workers` > 1 (data parallelism) several such processes, each a whole
engine on its own GPUs, take every workers-th pending shard; as seeds follow
the shard index, the rows do not change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from selftaught import schemas
from selftaught.files import write_parquet_atomic, write_text_atomic
from selftaught.procs import ROOT, python_env
from selftaught.seeds import shard_seed
from synth.backends import Backend, BackendError, Progress, SamplingParams, core_slices, cpu_bind, load_backend
from synth.sampling import to_samples

log = logging.getLogger("selftaught.synth")

JOB_FILE, MANIFEST, PROMPTS_FILE = "job.json", "manifest.json", "prompts.parquet"
OUTPUT_OPTIONS = ("model", "base_url", "dtype", "batch_size", "max_model_len")  # backend options that change rows
PROCESS_OPTIONS = ("python",)  # options of the job's process, not of the backend: never passed to it


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
    def from_json(cls, text: str) -> GenerationJob:
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
    return dataclasses.replace(params, seed=shard_seed(params.seed, i))


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
    for tmp in out.glob(".shard-*.tmp"):  # left by a killed shard write; the shard is redone
        tmp.unlink(missing_ok=True)
    n_shards = max(1, math.ceil(prompts.height / job.shard_size))
    write_parquet_atomic(prompts, out / PROMPTS_FILE)
    write_text_atomic(job.to_json(), out / JOB_FILE)
    write_text_atomic(json.dumps({"fingerprint": fp, "shards": n_shards, "prompts": prompts.height}), manifest)
    return n_shards


def pending_shards(job: GenerationJob, n_shards: int) -> list[int]:
    return [i for i in range(n_shards) if not shard_path(Path(job.out_dir), i).is_file()]


def run(
    job: GenerationJob, prompts: pl.DataFrame, progress: Progress | None = None, backend: Backend | None = None
) -> pl.DataFrame:
    """Generate every missing shard in this process, then return all rows in prompt order (in a
    subprocess after all when the job names another interpreter: it has what this one lacks)."""
    if backend is None and worker_python(job) != sys.executable:
        return run_isolated(job, prompts, log.info)
    n_shards = prepare(job, prompts)
    generate_pending(job, prompts, n_shards, progress, backend)
    return collect(job, n_shards)


def generate_pending(
    job: GenerationJob,
    prompts: pl.DataFrame,
    n_shards: int,
    progress: Progress | None = None,
    backend: Backend | None = None,
    rank: int = 0,
    workers: int = 1,
) -> None:
    """The missing shards (this worker's share of them: every `workers`-th, from `rank`)."""
    pending = pending_shards(job, n_shards)
    todo = pending[rank::workers]
    if len(pending) < n_shards and rank == 0:
        log.info(
            "generation: %d of %d shards already done in %s; resuming", n_shards - len(pending), n_shards, job.out_dir
        )
    owned = bool(todo) and backend is None
    if owned:
        started = time.monotonic()
        backend = make_backend(job)
        # the engine's start (vLLM on a CPU: minutes, compiling) apart from the shards' time
        log.info("generation: %s backend ready in %.1fs", job.backend, time.monotonic() - started)
    try:
        _generate_shards(job, prompts, todo, n_shards, backend, progress)
    finally:
        if owned and backend is not None and hasattr(backend, "close"):
            backend.close()  # an in-process engine frees its memory before training starts


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
    options = {k: v for k, v in job.options.items() if k not in PROCESS_OPTIONS}
    if job.backend == "vllm" and job.adapter_dir:
        options["adapter_dir"] = job.adapter_dir
    return load_backend(job.backend, job.model_dir, **options)


def run_isolated(
    job: GenerationJob,
    prompts: pl.DataFrame,
    log_line: Callable[[str], None] = print,
    env: dict | None = None,
    workers: int = 1,
    gpus_per_worker: int = 1,
) -> pl.DataFrame:
    """Run the job in fresh Python processes (`workers` of them, each on its own
    `gpus_per_worker` GPUs where there are GPUs); their memory is gone when this returns."""
    python = worker_python(job)
    n_shards = prepare(job, prompts)
    pending = pending_shards(job, n_shards)
    if pending:
        workers = min(workers, len(pending))
        envs = worker_envs(workers, gpus_per_worker, env)
        if workers > 1:
            log_line(
                f"generation: {len(pending)} shards over {workers} processes"
                + (
                    f" (GPUs {', '.join(e['CUDA_VISIBLE_DEVICES'] for e in envs)})"
                    if "CUDA_VISIBLE_DEVICES" in envs[0]
                    else ""
                )
            )
        _run_workers(job, workers, envs, log_line, python)
    return collect(job, n_shards)


def worker_envs(workers: int, gpus_per_worker: int, env: dict | None = None) -> list[dict]:
    """Each worker's environment: its own slice of the visible GPUs, or of the CPU threads."""
    base = python_env(env)
    if workers == 1:
        return [base]
    gpus = visible_gpus()
    if not gpus:  # CPU: split the threads (and vLLM's cores) instead of every process using all of them
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        return [{**base, "OMP_NUM_THREADS": threads, **cpu_share(r, workers)} for r in range(workers)]
    if len(gpus) < workers * gpus_per_worker:
        raise RuntimeError(
            f"{workers} generation processes x {gpus_per_worker} GPUs need "
            f"{workers * gpus_per_worker} GPUs; {len(gpus)} are visible ({','.join(gpus)})"
        )
    return [
        {**base, "CUDA_VISIBLE_DEVICES": ",".join(gpus[r * gpus_per_worker : (r + 1) * gpus_per_worker])}
        for r in range(workers)
    ]


def cpu_share(rank: int, workers: int) -> dict:
    """VLLM_CPU_OMP_THREADS_BIND of worker `rank`: its own slice of the usable cores (vLLM binds
    its threads to every usable core otherwise, and the workers would share them). Unset where
    the user set it, or where there are fewer cores than workers."""
    cores = sorted(os.sched_getaffinity(0))
    if os.environ.get("VLLM_CPU_OMP_THREADS_BIND") or len(cores) < workers:
        return {}
    return {"VLLM_CPU_OMP_THREADS_BIND": cpu_bind(core_slices(cores, workers)[rank])}


def worker_python(job: GenerationJob) -> str:
    """The interpreter of the job's subprocesses: sampling.vllm.python where set (absolute, or
    relative to the project root, where `make .venv-vllm/.installed` builds .venv-vllm), else this
    one. Checked before any process starts, so that a missing vLLM is one line, not a child's
    traceback after its imports."""
    path = job.options.get("python") if job.backend == "vllm" else None
    if path:
        exe = Path(path).expanduser()
        exe = exe if exe.is_absolute() else Path(ROOT) / exe
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            raise BackendError(
                f"sampling.vllm.python: {exe} is not an executable interpreter "
                "(make .venv-vllm/.installed builds .venv-vllm/bin/python)"
            )
        return str(exe)
    if job.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise BackendError(
            f"sampling.backend vllm: vllm is not importable in {sys.executable}; set sampling.vllm.python "
            "to an interpreter that has it, e.g. .venv-vllm/bin/python (make .venv-vllm/.installed builds it)"
        )
    return sys.executable


def visible_gpus() -> list[str]:
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return [g for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _run_workers(
    job: GenerationJob, workers: int, envs: list[dict], log_line: Callable[[str], None], python: str = sys.executable
) -> None:
    """Start the workers (`python -m synth.generate`) on one shared output pipe; forward their
    progress; on an error line, stop the others (finished shards stay for the rerun)."""
    cmd = [python, "-m", "synth.generate", str(Path(job.out_dir) / JOB_FILE)]
    read, write = os.pipe()
    procs = []
    try:
        for rank, env in enumerate(envs):
            extra = [f"--rank={rank}", f"--workers={workers}"] if workers > 1 else []
            procs.append(subprocess.Popen(cmd + extra, stdout=write, stderr=subprocess.STDOUT, env=env))
    finally:
        os.close(write)  # the pipe ends when every worker has exited
    tail: deque[str] = deque(maxlen=30)
    with os.fdopen(read, errors="replace") as out:
        for line in out:
            tail.append(line.rstrip())
            if line.startswith("generation: error:") and len(procs) > 1:
                for p in procs:
                    if p.poll() is None:
                        p.terminate()
            if line.startswith("generation:"):
                log_line(line.rstrip())
    codes = [p.wait() for p in procs]
    if any(codes):
        errors = [line for line in tail if line.startswith("generation: error:")]
        raise RuntimeError(
            f"generation subprocess exited with {', '.join(str(c) for c in codes if c)}: "
            + ("\n".join(errors) if errors else "last output:\n" + "\n".join(tail))
        )


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m synth.generate", description="run a generation job's shards")
    ap.add_argument("job", help="OUT_DIR/job.json (written by the parent)")
    ap.add_argument("--rank", type=int, default=0, help="this worker's index (data parallelism)")
    ap.add_argument("--workers", type=int, default=1, help="how many workers share the shards")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # a parent's ignored signals must not make us unkillable
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    job = GenerationJob.from_json(Path(args.job).read_text())
    prompts = schemas.validate(pl.read_parquet(Path(job.out_dir) / PROMPTS_FILE), "prompts")
    n_shards = json.loads((Path(job.out_dir) / MANIFEST).read_text())["shards"]
    try:
        generate_pending(job, prompts, n_shards, rank=args.rank, workers=args.workers)
    except (BackendError, ValueError) as exc:  # expected failures: one line, no traceback
        print(f"generation: error: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
