"""Experiments side by side (`selftaught compare A B ...` and the folder UI's `comparison`
asset): per round, each experiment's held-out accuracy per difficulty (and its control's),
samples, kept rows, generated and trained tokens and wall seconds, all read from the files
under each storage root, so experiments run on other machines or Dagster homes compare too.

Where the numbers come from:
- accuracy: tables/evaluation/<round> (control: tables/control_evaluation/<round>);
- samples, kept rows: tables/verdicts (or rollouts) and the rows new in tables/training_set;
- generated tokens: the samples' completions under the base model's tokenizer (as the
  samples stage counts them); trained tokens: the policy's provenance;
- wall seconds: the stage cost files (work/costs/<round>/<stage>.json) of the recipe's stages,
  every attempt included, as the compute ledger counts them; the control's are not in it.
"""

from __future__ import annotations

import json

import polars as pl

from filters.summary import aligned, round_keys, round_rows
from selftaught.files import read_parquet
from selftaught.store import Store, model_path

CONTROL_STAGES = ("control_policy", "control_evaluation")


def compare_table(experiments: dict[str, Store]) -> pl.DataFrame:
    """One row per (round, experiment), rounds in order ("base" first), experiments in the given order."""
    rows = []
    for name, store in experiments.items():
        for r in round_rows(store, round_keys(store)):
            rows.append({"experiment": name, **r, **_round_costs(store, r["round"])})
    levels = sorted({d for r in rows for d in r.get("accuracy", {})})
    controlled = sorted({d for r in rows for d in r.get("control", {})})
    order = {name: i for i, name in enumerate(experiments)}
    rows.sort(key=lambda r: (-1 if r["round"] == "base" else int(r["round"][1:]), order[r["experiment"]]))
    out = []
    for r in rows:
        acc = r.get("accuracy", {})
        control = acc if r["round"] == "base" else r.get("control", {})
        out.append(
            {
                "round": r["round"],
                "experiment": r["experiment"],
                **{f"accuracy_d{d}": acc.get(d) for d in levels},
                **{f"control_d{d}": control.get(d) for d in controlled},
                "samples": r.get("samples"),
                "kept_rows": r.get("new_rows"),
                "tokens_generated": r.get("tokens_generated"),
                "tokens_trained": r.get("tokens_trained"),
                "wall_s": r.get("wall_s"),
            }
        )
    schema = {
        "round": pl.String,
        "experiment": pl.String,
        **{f"accuracy_d{d}": pl.Float64 for d in levels},
        **{f"control_d{d}": pl.Float64 for d in controlled},
        "samples": pl.Int64,
        "kept_rows": pl.Int64,
        "tokens_generated": pl.Int64,
        "tokens_trained": pl.Int64,
        "wall_s": pl.Float64,
    }
    return pl.DataFrame(out, schema=schema)


def _round_costs(store: Store, key: str) -> dict:
    if key == "base":
        return {}
    out: dict = {}
    costs = sorted((store.root / "work" / "costs" / key).glob("*.json"))
    spent = [json.loads(p.read_text()).get("wall_s", 0.0) for p in costs if p.stem not in CONTROL_STAGES]
    if spent:
        out["wall_s"] = float(sum(spent))
    samples, base = store.table_path("samples", key), model_path(store.model_dir("base"))
    if samples.is_file() and base.is_dir():
        from synth.backends import count_tokens

        out["tokens_generated"] = count_tokens(base, read_parquet(samples, columns=["completion"])["completion"])
    metrics = (store.provenance(key) or {}).get("metrics") or {}
    if metrics.get("generated_tokens"):  # an online objective generates while it trains
        out["tokens_generated"] = out.get("tokens_generated", 0) + int(metrics["generated_tokens"])
    if metrics.get("trained_tokens"):
        out["tokens_trained"] = int(metrics["trained_tokens"])
    return out


def format_compare(table: pl.DataFrame) -> str:
    """The table as the CLI prints it: percentages, '-' where an experiment has no such number."""
    names = {"samples": "samples", "kept_rows": "kept", "tokens_generated": "gen tok", "tokens_trained": "train tok"}
    head, cells = [], []
    for col in table.columns:
        if col.startswith("accuracy_d"):
            head.append(f"acc {col.removeprefix('accuracy_d')}d")
        elif col.startswith("control_d"):
            head.append(f"ctrl {col.removeprefix('control_d')}d")
        else:
            head.append(names.get(col, col.replace("_s", " s")))
    for row in table.iter_rows(named=True):
        line = []
        for col, v in row.items():
            if v is None:
                line.append("-")
            elif col.startswith(("accuracy_d", "control_d")):
                line.append(f"{v:.1%}")
            elif col == "wall_s":
                line.append(f"{v:.0f}")
            else:
                line.append(str(v))
        cells.append(line)
    return aligned([head, *cells], left=frozenset({0, 1}))  # round, experiment
