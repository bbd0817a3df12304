"""The per-round table the CLI prints, read back from the round files on disk."""

from __future__ import annotations

import polars as pl

from filters.metrics import accuracy_by_difficulty, frontier_candidates, pick_frontier
from selftaught.schemas import CORRECT
from selftaught.store import Store


def round_rows(store: Store, keys: list[str], wall: dict[str, float] | None = None) -> list[dict]:
    rows = []
    base = store.table_path("eval_results", "base")
    if base.is_file():
        rows.append({"round": "base", "accuracy": accuracy_by_difficulty(pl.read_parquet(base))})
    for key in keys:
        row: dict = {"round": key}
        v = store.table_path("verdicts", key)
        verdicts = pl.read_parquet(v, columns=["prompt_id", "sample_idx", "verdict", "rationale_ok"]) \
            if v.is_file() else None
        if verdicts is not None:
            row["samples"] = verdicts.height
            row["pass_rate"] = (verdicts["verdict"] == CORRECT).mean() if verdicts.height else 0.0
        t = store.table_path("training_set", key)
        if t.is_file():
            ts = pl.read_parquet(t, columns=["source_round", "prompt_id", "sample_idx"])
            new = ts.filter(pl.col("source_round") == key)
            row["new_rows"] = new.height
            row["train_rows"] = ts.height
            if verdicts is not None and new.height:
                steps = new.join(verdicts, on=["prompt_id", "sample_idx"])["rationale_ok"]
                row["bad_steps"] = float((steps == False).sum()) / new.height  # noqa: E712
        e = store.table_path("evaluation", key)
        if e.is_file():
            row["accuracy"] = accuracy_by_difficulty(pl.read_parquet(e))
        if wall and key in wall:
            row["wall_s"] = wall[key]
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    digits = sorted({d for r in rows for d in r.get("accuracy", {})})
    head = ["round", "samples", "pass", "kept", "kept w/ bad steps", "train rows"] + \
        [f"acc {d}d" for d in digits] + ["wall s"]
    lines = [head]
    for r in rows:
        acc = r.get("accuracy", {})
        lines.append([
            r["round"],
            str(r.get("samples", "-")),
            f"{r['pass_rate']:.1%}" if "pass_rate" in r else "-",
            str(r.get("new_rows", "-")),
            f"{r['bad_steps']:.1%}" if "bad_steps" in r else "-",
            str(r.get("train_rows", "-")),
            *[f"{acc[d]:.1%}" if d in acc else "-" for d in digits],
            f"{r['wall_s']:.0f}" if "wall_s" in r else "-",
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def curve(rows: list[dict], difficulty: int, unit: str = "digit") -> str | None:
    accs = [(r["round"], r["accuracy"][difficulty]) for r in rows if difficulty in r.get("accuracy", {})]
    if len(accs) < 2:
        return None
    points = " -> ".join(f"{a:.1%}" for _, a in accs)
    gain = (accs[-1][1] - accs[0][1]) * 100
    name = f"{difficulty}-digit" if unit == "digit" else f"difficulty {difficulty}"
    return f"{name} held-out accuracy: {points} ({gain:+.1f} points from {accs[0][0]} to {accs[-1][0]})"


def frontier_summary(rows: list[dict], frontier: int | str, pool: list[int], unit: str = "digit") -> str | None:
    """One line per pool difficulty, the frontier first and marked; `unit` "digit"
    (arithmetic: difficulty = digit count) or anything else (a dataset's level)."""
    base = next((r["accuracy"] for r in rows if r["round"] == "base"), {})
    front = pick_frontier(frontier, base, pool)
    order = ([front] if front is not None else []) + [d for d in frontier_candidates(pool, base) if d != front]
    lines = []
    for d in order:
        line = curve(rows, d, unit)
        if line:
            how = " (auto: hardest difficulty the base solves >= 10% of)" if frontier == "auto" else ""
            lines.append(("frontier " + line + how) if d == front else ("         " + line))
    return "\n".join(lines) or None
