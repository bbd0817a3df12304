"""Per-stage time of an experiment's rounds, from the Dagster instance, and a paper estimate of
one round at 10x and 100x the data.

    DAGSTER_HOME=data/dagster_home .venv/bin/python bench/stages.py --config pipelines/presets/demo.yaml

Reads each round's run step stats (start/end of every step) and the round tables (samples,
training rows). The estimate scales what grows with the pool linearly (sampling,
verification, the tables), keeps training epochs constant (steps grow with the rows) and
keeps evaluation fixed (the held-out set does not grow); each stage's measured throughput
is assumed to hold at the larger size. `--usd-per-hour` prices the machine.
"""

from __future__ import annotations

import argparse

import dagster as dg
import polars as pl

from assets.parent import latest_materialization
from pipelines.keys import asset_key
from pipelines.progress import ROUND_ORDER
from selftaught.config import load_config
from selftaught.round_keys import round_key
from selftaught.store import Store

GROWS = {"prompts", "sampling_plan", "samples", "verdicts", "repairs", "training_set", "pairs"}


def stage_seconds(instance, experiment: str, key: str) -> dict[str, float]:
    runs = {rec.run_id for n in ROUND_ORDER if (rec := latest_materialization(instance, asset_key(experiment, n), key))}
    out: dict[str, float] = {}
    for run_id in runs:
        for s in instance.get_run_step_stats(run_id):
            if s.start_time and s.end_time:
                out[s.step_key] = out.get(s.step_key, 0.0) + s.end_time - s.start_time
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="pipelines/presets/demo.yaml")
    ap.add_argument("--usd-per-hour", type=float, default=0.10, help="price of the machine that ran the rounds")
    args = ap.parse_args()
    cfg = load_config(args.config)
    store = Store.for_config(cfg)
    with dg.DagsterInstance.get() as instance:
        rounds = []
        for i in range(1, cfg.max_rounds + 1):
            key = round_key(i)
            secs = stage_seconds(instance, cfg.name, key)
            if secs:
                rounds.append((key, secs))
    if not rounds:
        raise SystemExit(f"no rounds of {cfg.name} in this Dagster instance (DAGSTER_HOME?)")
    stages = [s for s in ROUND_ORDER if any(s in secs for _, secs in rounds)]
    print(f"{cfg.name}: seconds per stage and round")
    print(f"{'stage':14}" + "".join(f"{k:>9}" for k, _ in rounds) + f"{'mean':>9}")
    mean = {}
    for s in stages:
        vals = [secs.get(s, 0.0) for _, secs in rounds]
        mean[s] = sum(vals) / len(vals)
        print(f"{s:14}" + "".join(f"{v:9.1f}" for v in vals) + f"{mean[s]:9.1f}")
    last = rounds[-1][0]
    samples = pl.read_parquet(store.table_path("samples", last)).height
    rows = pl.read_parquet(store.table_path("training_set", last)).height
    print(
        f"\n{last}: {samples} samples ({samples / max(mean.get('samples', 1e-9), 1e-9):.0f}/s sampled, "
        f"{samples / max(mean.get('verdicts', 1e-9), 1e-9):.0f}/s verified), {rows} training rows"
    )
    print(f"\none round, paper estimate (machine at ${args.usd_per_hour:.2f}/h):")
    print(f"{'data':>6} {'round s':>10} {'round h':>9} {'cost $':>9}   largest stage")
    for scale in (1, 10, 100):
        est = {s: v * (scale if s in GROWS or s == "policy" else 1) for s, v in mean.items()}
        total = sum(est.values())
        top = max(est, key=est.get)
        print(
            f"{scale:>5}x {total:10.0f} {total / 3600:9.2f} {total / 3600 * args.usd_per_hour:9.2f}   "
            f"{top} ({est[top] / total:.0%})"
        )


if __name__ == "__main__":
    main()
