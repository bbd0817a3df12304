"""What a round changed, against the round before it (the `round_diff` asset) or any other
(`selftaught diff A B`): read from the tables on disk.

- held-out prompts newly solved and newly lost (greedy evaluation), per difficulty, with ids;
- the kept set (training rows new in the round): the share of its prompts also kept by the
  round before (overlap), its mean completion length and the drift from the round before;
- distinct final answers per prompt among the round's samples (diversity);
- easy-sample collapse: the share of kept rows whose prompt was already saturated, every
  sample of it correct. (The issue asks for "already solved greedily"; a round does not
  decode its pool greedily, and all-correct at the sampling temperature is the stricter test
  the round's own samples can answer.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import polars as pl

from selftaught import schemas
from selftaught.files import read_parquet
from selftaught.schemas import CORRECT
from selftaught.store import Store


@dataclass(frozen=True)
class RoundDiff:
    table: pl.DataFrame  # schemas.ROUND_DIFF, one row per difficulty
    numbers: dict[str, float]  # the plotted ones; a number with nothing to measure is left out

    def markdown(self) -> str:
        t = self.table
        if t.height == 0:
            return "no held-out prompt evaluated in both"
        before, after = t["against"][0], t["round"][0]
        lines = [
            f"| difficulty | prompts | solved ({before}) | solved ({after}) | newly solved | newly lost |",
            "|---|---|---|---|---|---|",
        ]
        for r in t.iter_rows(named=True):
            lines.append(
                f"| {r['difficulty']} | {r['prompts']} | {r['solved_before']} | {r['solved_after']} | "
                f"{r['newly_solved']} | {r['newly_lost']} |"
            )
        lines += ["", *[f"- {k}: {v:.4g}" for k, v in self.numbers.items()]]
        lost = [i for ids in t["newly_lost_ids"] for i in ids]
        if lost:
            lines += ["", f"newly lost: {', '.join(lost[:20])}" + (" ..." if len(lost) > 20 else "")]
        return "\n".join(lines)

    def text(self) -> str:
        """The same for a terminal."""
        t = self.table
        header = (
            f"{'difficulty':>10} {'prompts':>7} {'solved before':>13} {'solved after':>12} {'newly solved':>12} "
            f"{'newly lost':>10}"
        )
        rows = [
            f"{r['difficulty']:>10} {r['prompts']:>7} {r['solved_before']:>13} {r['solved_after']:>12} "
            f"{r['newly_solved']:>12} {r['newly_lost']:>10}"
            for r in t.iter_rows(named=True)
        ]
        numbers = [f"{k}: {v:.4g}" for k, v in self.numbers.items()]
        ids = [
            f"{what} d{r['difficulty']}: {', '.join(r[f'{what}_ids'][:10])}"
            + (" ..." if len(r[f"{what}_ids"]) > 10 else "")
            for r in t.iter_rows(named=True)
            for what in ("newly_solved", "newly_lost")
            if r[f"{what}_ids"]
        ]
        return "\n".join([header, "-" * len(header), *rows, "", *numbers, *([""] + ids if ids else [])])


def eval_changes(before: pl.DataFrame, after: pl.DataFrame, round_key: str, against: str) -> pl.DataFrame:
    """Per difficulty: held-out prompts evaluated in both evaluation tables, solved in each,
    newly solved and newly lost (with their ids, sorted)."""
    b = before.select("prompt_id", "difficulty", (pl.col("verdict") == CORRECT).alias("b"))
    a = after.select("prompt_id", (pl.col("verdict") == CORRECT).alias("a"))
    both = b.join(a, on="prompt_id", how="inner")
    table = (
        both.group_by("difficulty")
        .agg(
            pl.len().cast(pl.Int64).alias("prompts"),
            pl.col("b").sum().cast(pl.Int64).alias("solved_before"),
            pl.col("a").sum().cast(pl.Int64).alias("solved_after"),
            (pl.col("a") & ~pl.col("b")).sum().cast(pl.Int64).alias("newly_solved"),
            (pl.col("b") & ~pl.col("a")).sum().cast(pl.Int64).alias("newly_lost"),
            pl.col("prompt_id").filter(pl.col("a") & ~pl.col("b")).sort().alias("newly_solved_ids"),
            pl.col("prompt_id").filter(pl.col("b") & ~pl.col("a")).sort().alias("newly_lost_ids"),
        )
        .sort("difficulty")
        .with_columns(pl.lit(round_key).alias("round"), pl.lit(against).alias("against"))
    )
    return schemas.validate(table.select(list(schemas.ROUND_DIFF)), "round_diff")


def kept_numbers(kept: pl.DataFrame, kept_before: pl.DataFrame | None, verdicts: pl.DataFrame | None) -> dict:
    """The kept set's numbers: overlap with the round before, answer length and its drift,
    distinct answers per prompt, and the share of kept rows from saturated prompts."""
    out: dict[str, float] = {}
    if kept.height:
        out["kept_rows"] = float(kept.height)
        out["kept_answer_length"] = float(cast(float, kept["completion"].str.len_chars().mean()))
        if kept_before is not None and kept_before.height:
            now, then = set(kept["prompt_id"]), set(kept_before["prompt_id"])
            out["kept_overlap"] = len(now & then) / len(now)
            out["kept_answer_length_drift"] = out["kept_answer_length"] - float(
                cast(float, kept_before["completion"].str.len_chars().mean())
            )
    if verdicts is not None and verdicts.height:
        per_prompt = verdicts.group_by("prompt_id").agg(
            pl.col("extracted_answer").drop_nulls().n_unique().alias("distinct"),
            (pl.col("verdict") == CORRECT).all().alias("saturated"),
        )
        out["distinct_answers_per_prompt"] = float(cast(float, per_prompt["distinct"].mean()))
        if kept.height:
            saturated = set(per_prompt.filter(pl.col("saturated"))["prompt_id"])
            out["kept_from_saturated_prompts"] = float(cast(float, kept["prompt_id"].is_in(list(saturated)).mean()))
    return out


def _kept(store: Store, key: str) -> pl.DataFrame | None:
    """Training rows new in round `key` that came from its own samples (None: no table)."""
    path = store.table_path("training_set", key)
    if not path.is_file():
        return None
    rows = read_parquet(path, columns=["source_round", "prompt_id", "completion", "origin"])
    return rows.filter((pl.col("source_round") == key) & (pl.col("origin") != "warm_start"))


def diff_rounds(store: Store, against: str, round_key: str) -> RoundDiff:
    """Round `round_key` against `against` (an earlier round, or "base"), from the files."""
    missing = [k for k in (against, round_key) if not store.evaluation_path(k).is_file()]
    if missing:
        raise ValueError(f"no evaluation of {' or '.join(missing)} in {store.location()}: materialize it first")
    table = eval_changes(
        read_parquet(store.evaluation_path(against)), read_parquet(store.evaluation_path(round_key)), round_key, against
    )
    numbers = {"newly_solved": float(table["newly_solved"].sum()), "newly_lost": float(table["newly_lost"].sum())}
    for row in table.iter_rows(named=True):
        numbers[f"newly_solved_d{row['difficulty']}"] = float(row["newly_solved"])
        numbers[f"newly_lost_d{row['difficulty']}"] = float(row["newly_lost"])
    verdicts_path = store.table_path("verdicts", round_key)
    verdicts = (
        read_parquet(verdicts_path, columns=["prompt_id", "verdict", "extracted_answer"])
        if verdicts_path.is_file()
        else None
    )
    kept = _kept(store, round_key)
    if kept is not None:
        numbers.update(kept_numbers(kept, _kept(store, against) if against != "base" else None, verdicts))
    return RoundDiff(table, numbers)
