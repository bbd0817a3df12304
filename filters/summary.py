"""Per-round numbers read back from the round files on disk: the CLI's table and the
`summary` asset's table and plot."""

from __future__ import annotations

from typing import cast

import polars as pl

from filters.metrics import accuracy_by_difficulty, per_prompt
from selftaught.files import read_parquet
from selftaught.schemas import CORRECT
from selftaught.store import Store


def round_rows(store: Store, keys: list[str], wall: dict[str, float] | None = None) -> list[dict]:
    rows = []
    base = store.evaluation_path("base")
    if base.is_file():
        rows.append({"round": "base", "accuracy": accuracy_by_difficulty(read_parquet(base))})
    for key in keys:
        row: dict = {"round": key}
        v = store.table_path("verdicts", key)
        verdicts = (
            read_parquet(v, columns=["prompt_id", "sample_idx", "verdict", "rationale_ok"]) if v.is_file() else None
        )
        r = store.table_path("rollouts", key)
        if (verdicts is None or verdicts.height == 0) and r.is_file():  # an online (grpo) round
            verdicts = read_parquet(r, columns=["prompt_id", "sample_idx", "verdict", "rationale_ok"])
        if verdicts is not None:
            row["samples"] = verdicts.height
            row["pass_rate"] = (verdicts["verdict"] == CORRECT).mean() if verdicts.height else 0.0
        t = store.table_path("training_set", key)
        if t.is_file():
            ts = read_parquet(t, columns=["source_round", "prompt_id", "sample_idx", "origin"])
            new = ts.filter(pl.col("source_round") == key)
            row["new_rows"] = new.height
            row["train_rows"] = ts.height
            sampled = new.filter(pl.col("origin") == "sample")  # repairs' sample_idx is not a sample's
            if verdicts is not None and sampled.height:
                steps = sampled.join(verdicts, on=["prompt_id", "sample_idx"])["rationale_ok"]
                row["bad_steps"] = float((steps == False).sum()) / sampled.height  # noqa: E712
        phase = (store.provenance(key) or {}).get("phase")
        if phase:  # an experiment in phases (config `phases`): the phase the round ran
            row["phase"] = phase
        e = store.table_path("evaluation", key)
        if e.is_file():
            row["accuracy"] = accuracy_by_difficulty(read_parquet(e))
        control = control_accuracy(store, key)
        if control:
            row["control"] = control
        if wall and key in wall:
            row["wall_s"] = wall[key]
        rows.append(row)
    return rows


def control_accuracy(store: Store, key: str) -> dict[int, float]:
    """Round `key`'s control (evaluation.control) accuracy per difficulty, from its
    control_evaluation table; empty when there is none."""
    path = store.table_path("control_evaluation", key)
    return accuracy_by_difficulty(read_parquet(path)) if path.is_file() else {}


def round_metrics(store: Store, key: str) -> dict[str, float]:
    """Round `key`'s numbers from its tables so far (experiment trackers plot them per round):
    samples, pass rate, kept rows (new this round), training rows, kept rows with bad steps."""
    row = round_rows(store, [key])[-1]
    names = {
        "samples": "samples",
        "pass_rate": "pass_rate",
        "new_rows": "kept_rows",
        "train_rows": "train_rows",
        "bad_steps": "kept_bad_steps",
    }
    return {names[k]: float(v) for k, v in row.items() if k in names}


def round_keys(store: Store) -> list[str]:
    return store.partitions("prompts")


def summary_table(store: Store) -> pl.DataFrame:
    """One row per round (and the base model, first): counts, pass rate, answer diversity, accuracy
    per difficulty, and with evaluation.control the control's accuracy (control_d<d>; the base
    row holds the base model's, where both curves start)."""
    rows = round_rows(store, round_keys(store))
    levels = sorted({d for r in rows for d in r.get("accuracy", {})})
    controlled = sorted({d for r in rows for d in r.get("control", {})})
    out = []
    for r in rows:
        key = r["round"]
        rec = {
            "round": key,
            "samples": r.get("samples"),
            "pass_rate": r.get("pass_rate"),
            "distinct_answers": _distinct_answers(store, key) if key != "base" else None,
            "new_rows": r.get("new_rows"),
            "train_rows": r.get("train_rows"),
        }
        for d in levels:
            rec[f"accuracy_d{d}"] = r.get("accuracy", {}).get(d)
        for d in controlled:  # the base model is its own control
            rec[f"control_d{d}"] = (r.get("accuracy", {}) if key == "base" else r.get("control", {})).get(d)
        out.append(rec)
    schema = {
        "round": pl.String,
        "samples": pl.Int64,
        "pass_rate": pl.Float64,
        "distinct_answers": pl.Float64,
        "new_rows": pl.Int64,
        "train_rows": pl.Int64,
        **{f"accuracy_d{d}": pl.Float64 for d in levels},
        **{f"control_d{d}": pl.Float64 for d in controlled},
    }
    return pl.DataFrame(out, schema=schema)


def _distinct_answers(store: Store, key: str) -> float | None:
    """Mean number of distinct extracted answers per prompt: exploration (B-STaR's diversity).
    A GRPO round samples online: its groups are the rollouts of one prompt at one step."""
    columns = ["prompt_id", "extracted_answer", "verdict"]
    for table in ("verdicts", "rollouts"):
        path = store.table_path(table, key)
        if not path.is_file():
            continue
        df = read_parquet(path, columns=columns + (["step"] if table == "rollouts" else []))
        if table == "rollouts":
            df = df.with_columns(pl.format("{}/{}", "step", "prompt_id").alias("prompt_id"))
        mean = cast(float | None, per_prompt(df)["distinct_answers"].mean()) if df.height else None
        if mean is not None:
            return float(mean)
    return None


def rounds_plot(table: pl.DataFrame, title: str) -> bytes:
    """PNG: accuracy per difficulty (from the base model's point; with a control, its curve
    dashed beside each), pass rate and distinct answers per round."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(table.height))
    labels = table["round"].to_list()

    def values(col: str) -> list[float]:
        return [float("nan") if v is None else v for v in table[col].to_list()]

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for col in (c for c in table.columns if c.startswith("accuracy_d")):
        line = left.plot(x, values(col), marker="o", label=col.replace("accuracy_d", "difficulty "))[0]
        control = col.replace("accuracy_d", "control_d")
        if control in table.columns:  # the same colour, dashed
            left.plot(
                x,
                values(control),
                marker="x",
                linestyle="--",
                color=line.get_color(),
                label=f"{line.get_label()} control",
            )
    left.set(title=f"{title}: held-out accuracy", ylim=(0, 1), xticks=x, xticklabels=labels)
    left.legend(fontsize=7)
    right.plot(x, values("pass_rate"), marker="o", label="pass rate (samples)")
    right.set(title="sampling", xticks=x, xticklabels=labels, xlim=(-0.2, len(x) - 0.8), ylim=(0, 1))
    twin = right.twinx()
    twin.plot(x, values("distinct_answers"), marker="s", color="tab:red", label="distinct answers / prompt")
    right.legend(loc="upper left", fontsize=7)
    twin.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def aligned(lines: list[list[str]], left: frozenset[int] = frozenset()) -> str:
    """A header line and rows as text columns (right-aligned, the `left` columns left-aligned),
    a dashed line under the header: the CLI's per-round tables."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = [
        "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in lines
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(df: pl.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    fmt = lambda v: "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    return head + "\n".join("| " + " | ".join(fmt(v) for v in row) + " |" for row in df.iter_rows())
