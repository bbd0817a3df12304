"""Sandbox throughput: HumanEval's 164 canonical solutions, one at a time vs the pool.

    .venv/bin/python bench/sandbox.py [--repeats 2]

Each program runs in its own sandboxed process (namespaces, own uid, rlimits),
so throughput is bounded by process start-up and the CPU count.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

from filters.sandbox import isolation_report, run_many

DATA = Path(__file__).resolve().parent.parent / "data" / "humaneval" / "HumanEval.jsonl.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    rows = [json.loads(line) for line in gzip.open(DATA, "rt")]
    jobs = [
        {"program": r["prompt"] + r["canonical_solution"], "tests": r["test"], "entry_point": r["entry_point"]}
        for r in rows
    ]
    cpus = os.cpu_count() or 1
    modes = [("one at a time", 1), (f"pool, {cpus} workers", cpus), (f"pool, {2 * cpus} workers", 2 * cpus)]
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeats):  # interleaved, so load drift hits every mode alike
        for name, workers in modes:
            t0 = time.perf_counter()
            passed = sum(r.passed for r in run_many(jobs, workers=workers))
            seconds = time.perf_counter() - t0
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, passed)
    print(f"{len(jobs)} HumanEval canonical solutions; isolation: {isolation_report()}; best of {args.repeats}")
    print(f"{'mode':<22}{'seconds':>9}{'programs/s':>12}{'passed':>8}{'speed-up':>10}")
    base = best["one at a time"][0]
    for name, (seconds, passed) in best.items():
        print(f"{name:<22}{seconds:>9.2f}{len(jobs) / seconds:>12.1f}{passed:>8}{base / seconds:>9.2f}x")


if __name__ == "__main__":
    main()
