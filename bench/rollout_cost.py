"""What a round's generation cost, offline recipes and online (grpo) rounds side by side.

For each experiment (a preset name, or a config path): per round, the completions the
policy generated (the samples table, or a grpo round's rollouts), their tokens (counted
with the run's own tokenizer), the seconds spent generating them and training, and the
held-out accuracy per difficulty. Offline rounds: generation is the samples step
(`generation_seconds`), training the policy step (`train_seconds`). A grpo round
generates inside training: its policy step's seconds are both.

Reads the run's files and the Dagster instance that ran it (bench/recipes.py uses
/tmp/selftaught_bench_home).

    .venv/bin/python bench/rollout_cost.py demo grpo dr_grpo ttrl
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import polars as pl

from selftaught.plugins import OBJECTIVES

ROOT = Path(__file__).resolve().parent.parent


def _config(name: str):
    from selftaught.config import load_config

    path = Path(name) if name.endswith((".yaml", ".yml")) else ROOT / "pipelines" / "presets" / f"{name}.yaml"
    if not path.is_file():
        path = ROOT / "data" / "runs" / "configs" / f"{name}.yaml"  # bench/recipes.py --on writes them here
    return load_config(path)


def _metadata(instance, experiment: str, asset: str, key: str) -> dict:
    from assets.parent import latest_materialization
    from pipelines.keys import asset_key

    rec = latest_materialization(instance, asset_key(experiment, asset), key)
    return {k: v.value for k, v in rec.asset_materialization.metadata.items()} if rec else {}


def rows_for(name: str, instance) -> list[dict]:
    from transformers import AutoTokenizer

    from filters.metrics import accuracy_by_difficulty
    from selftaught.store import Store

    cfg = _config(name)
    store = Store.for_config(cfg, str((ROOT / cfg.storage_root).resolve()))
    tok = AutoTokenizer.from_pretrained(store.model_dir("base") / "model")
    out = []
    for key in store.partitions("evaluation"):
        rollouts = store.table_path("rollouts", key)
        table = store.read_table("rollouts", key) if rollouts.is_file() else store.read_table("samples", key)
        texts = table["completion"].to_list()
        tokens = sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]) if texts else 0
        samples, policy = _metadata(instance, cfg.name, "samples", key), _metadata(instance, cfg.name, "policy", key)
        online = rollouts.is_file()
        out.append(
            {
                "experiment": name,
                "round": key,
                "objective": cfg.training.objective,
                "completions": len(texts),
                "tokens": tokens,
                "generate_s": None if online else samples.get("generation_seconds"),
                "train_s": policy.get("train_seconds"),
                "accuracy": accuracy_by_difficulty(pl.read_parquet(store.evaluation_path(key))),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiments", nargs="+")
    ap.add_argument("--dagster-home", default="/tmp/selftaught_bench_home")
    args = ap.parse_args()
    os.environ["DAGSTER_HOME"] = args.dagster_home
    import dagster as dg

    from pipelines.cli import quiet_libraries

    quiet_libraries()
    with dg.DagsterInstance.get() as instance:
        rows = [r for name in args.experiments for r in rows_for(name, instance)]
    levels = sorted({d for r in rows for d in r["accuracy"]})
    print(
        f"{'experiment':34} {'round':5} {'objective':9} {'completions':>11} {'tokens':>9} {'gen s':>10} "
        f"{'train s':>8}  " + "  ".join(f"{f'acc d{d}':>8}" for d in levels)
    )
    for r in rows:
        gen = (
            "(in train)"
            if r["generate_s"] is None and OBJECTIVES.get(r["objective"]).caps.online
            else f"{r['generate_s'] or float('nan'):.0f}"
        )
        print(
            f"{r['experiment']:34} {r['round']:5} {r['objective']:9} {r['completions']:>11,} {r['tokens']:>9,} "
            f"{gen:>10} {r['train_s'] or float('nan'):>8.0f}  "
            + "  ".join(f"{r['accuracy'].get(d, float('nan')):>8.1%}" for d in levels)
        )


if __name__ == "__main__":
    main()
