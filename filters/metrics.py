"""Round metrics: pass rates, pass@k, per-difficulty accuracy."""

from __future__ import annotations

from math import comb

import polars as pl

from selftaught.schemas import CORRECT, UNVERIFIABLE


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator (Chen et al. 2021) for c correct of n samples."""
    if k > n:
        raise ValueError(f"k={k} > n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def sample_metrics(samples_judged: pl.DataFrame, difficulty: pl.DataFrame) -> dict[str, float]:
    """Counts and rates of one round's samples; `difficulty` maps prompt_id -> difficulty."""
    df = samples_judged.join(difficulty.select("prompt_id", "difficulty"), on="prompt_id", how="left")
    n = max(df.height, 1)
    correct = df["verdict"] == CORRECT
    out = {
        "samples": float(df.height),
        "pass_rate": float(correct.sum()) / n,
        "unverifiable_share": float((df["verdict"] == UNVERIFIABLE).sum()) / n,
    }
    per_prompt = df.group_by("prompt_id", "difficulty").agg(
        n=pl.len(), c=(pl.col("verdict") == CORRECT).sum()
    )
    for d, grp in per_prompt.group_by("difficulty"):
        k = int(grp["n"].min())
        solved = sum(pass_at_k(int(a), int(b), k) for a, b in zip(grp["n"], grp["c"]))
        out[f"pass@{k}_d{d[0]}"] = solved / grp.height
    wrong_rationale = df.filter(correct & (pl.col("rationale_ok") == False))  # noqa: E712
    out["correct_with_bad_rationale"] = float(wrong_rationale.height)
    return out


def accuracy_by_difficulty(results: pl.DataFrame) -> dict[int, float]:
    acc = results.group_by("difficulty").agg((pl.col("verdict") == CORRECT).mean().alias("acc")).sort("difficulty")
    return {int(d): float(a) for d, a in acc.iter_rows()}


AUTO_FRONTIER_MIN = 0.10


def pick_frontier(frontier: int | str, base_accuracy: dict[int, float], pool: list[int]) -> int | None:
    """The configured difficulty, or for "auto" the hardest pool difficulty the base solves >= 10% of."""
    if frontier != "auto":
        return int(frontier)
    pool = list(pool) or sorted(base_accuracy)
    reachable = [d for d in sorted(pool) if base_accuracy.get(d, 0.0) >= AUTO_FRONTIER_MIN]
    return reachable[-1] if reachable else (min(pool) if pool else None)
