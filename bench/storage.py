"""What an object-store root costs: the same rounds on a local root and on s3:// (moto's
S3 server on 127.0.0.1), side by side, then a second machine's cold start (everything the
next round needs, pulled into an empty cache).

    .venv/bin/python bench/storage.py --config pipelines/presets/demo.yaml --rounds 1

Loopback S3 measures the pipeline's own overhead (uploads, ETag checks, cache
bookkeeping), not a real network: scale the cold-start megabytes by your bandwidth.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from selftaught.round_keys import round_key
from selftaught.store import Store

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.helpers import start_moto  # noqa: E402

BUCKET = "selftaught-bench"


def run(config: Path, rounds: int, home: Path) -> float:
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config), "--rounds", str(rounds)]
    res = subprocess.run(cmd, env={**os.environ, "DAGSTER_HOME": str(home)}, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{config.name} failed:\n{res.stderr[-3000:]}")
    return time.monotonic() - t0


def variant(src: Path, dst: Path, **changes) -> Path:
    data = yaml.safe_load(src.read_text())
    data.update(changes)
    dst.write_text(yaml.safe_dump(data))
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="pipelines/presets/demo.yaml")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="selftaught-bench-storage-"))
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    proc, endpoint = start_moto(tmp / "moto.log")
    try:
        import s3fs

        fs = s3fs.S3FileSystem(endpoint_url=endpoint)
        fs.mkdir(BUCKET)
        src = ROOT / args.config
        local = variant(src, tmp / "local.yaml", storage_root=str(tmp / "local-root"))
        remote = variant(
            src,
            tmp / "s3.yaml",
            storage_root=f"s3://{BUCKET}/run",
            storage_cache=str(tmp / "cache"),
            storage_options={"endpoint_url": endpoint},
        )
        print(f"running setup + {args.rounds} round(s) of {src.name} twice (local, s3) ...", flush=True)
        seconds = {
            "local": run(local, args.rounds, tmp / "home-local"),
            "s3": run(remote, args.rounds, tmp / "home-s3"),
        }
        objects = fs.find(f"{BUCKET}/run", detail=True)
        mb = sum(o["size"] for o in objects.values()) / 2**20
        # a second machine: the last round's tables and policy and the base model, into an empty cache
        cold = Store(f"s3://{BUCKET}/run", cache=tmp / "cold-cache", options={"endpoint_url": endpoint})
        key = round_key(args.rounds)
        t0 = time.monotonic()
        for name in ("base", key):
            cold.model_dir(name)
        for table in ("prompts", "samples", "verdicts", "training_set", "evaluation"):
            cold.table_path(table, key)
        pull = time.monotonic() - t0
        pulled = sum(p.stat().st_size for p in (tmp / "cold-cache").rglob("*") if p.is_file()) / 2**20
        t0 = time.monotonic()
        for name in ("base", key):
            cold.model_dir(name)  # already cached: only the COMPLETE.json check
        warm = time.monotonic() - t0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    print(f"\nsetup + {args.rounds} round(s) of {src.name}, wall seconds (`selftaught run`)")
    print(f"{'storage':24}{'seconds':>9}{'ratio':>8}")
    for name, s in seconds.items():
        print(f"{name + (' (moto, loopback)' if name == 's3' else ''):24}{s:9.1f}{s / seconds['local']:8.2f}")
    print(f"\nbucket: {len(objects)} objects, {mb:.1f} MB")
    print(
        f"cold start of {key} on an empty cache: {pulled:.1f} MB in {pull:.2f} s "
        f"({pulled / pull:.0f} MB/s on loopback); cached check of 2 models {warm * 1000:.0f} ms"
    )
    print(f"(scratch files in {tmp})")


if __name__ == "__main__":
    main()
