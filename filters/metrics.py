"""Round metrics: pass rates, pass@k, per-difficulty accuracy."""

from __future__ import annotations

from math import comb
from typing import cast

import polars as pl

from selftaught.files import read_parquet
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
    per_prompt = df.group_by("prompt_id", "difficulty").agg(n=pl.len(), c=(pl.col("verdict") == CORRECT).sum())
    for d, grp in per_prompt.group_by("difficulty"):
        k = int(cast(int, grp["n"].min()))
        solved = sum(pass_at_k(int(a), int(b), k) for a, b in zip(grp["n"], grp["c"]))
        out[f"pass@{k}_d{d[0]}"] = solved / grp.height
    wrong_rationale = df.filter(correct & (pl.col("rationale_ok") == False))  # noqa: E712
    out["correct_with_bad_rationale"] = float(wrong_rationale.height)
    out.update(prompt_metrics(df))
    return out


def per_prompt(samples_judged: pl.DataFrame) -> pl.DataFrame:
    """One row per prompt: samples, correct, solve rate, distinct answers, the
    majority answer and whether it is correct (maj@n)."""
    answered = samples_judged.filter(pl.col("extracted_answer").is_not_null())
    majority = (
        answered.group_by("prompt_id", "extracted_answer")
        .agg(votes=pl.len(), correct=(pl.col("verdict") == CORRECT).any())
        .sort("prompt_id", "votes", "extracted_answer", descending=[False, True, False])
        .group_by("prompt_id", maintain_order=True)
        .first()
        .select(
            "prompt_id",
            pl.col("extracted_answer").alias("majority_answer"),
            pl.col("correct").alias("majority_correct"),
        )
    )
    stats = (
        samples_judged.group_by("prompt_id")
        .agg(
            n=pl.len(),
            correct=(pl.col("verdict") == CORRECT).sum(),
            distinct_answers=pl.col("extracted_answer").drop_nulls().n_unique(),
        )
        .with_columns(solve_rate=pl.col("correct") / pl.col("n"))
    )
    return (
        stats.join(majority, on="prompt_id", how="left")
        .with_columns(pl.col("majority_correct").fill_null(False))
        .sort("prompt_id")
    )


def prompt_metrics(samples_judged: pl.DataFrame) -> dict[str, float]:
    """maj@n, distinct answers per prompt, and the spread of per-prompt solve rates
    (a collapsing spread is the exploration collapse self-training can suffer)."""
    pp = per_prompt(samples_judged)
    if pp.height == 0:
        return {}
    n = int(cast(int, pp["n"].min()))
    return {
        f"maj@{n}": float(cast(float, pp["majority_correct"].mean())),
        "distinct_answers_mean": float(cast(float, pp["distinct_answers"].mean())),
        "solve_rate_std": float(cast(float | None, pp["solve_rate"].std()) or 0.0),
        "prompts_all_correct": float(cast(float, (pp["solve_rate"] == 1.0).mean())),
        "prompts_none_correct": float(cast(float, (pp["solve_rate"] == 0.0).mean())),
    }


def accuracy_by_difficulty(results: pl.DataFrame) -> dict[int, float]:
    acc = results.group_by("difficulty").agg((pl.col("verdict") == CORRECT).mean().alias("acc")).sort("difficulty")
    return {int(d): float(a) for d, a in acc.iter_rows()}


AUTO_FRONTIER_MIN = 0.10


def frontier_candidates(pool: list[int], base_accuracy: dict[int, float]) -> list[int]:
    """The pool's difficulties, or the evaluated ones when the task has no pool difficulties."""
    return sorted(pool) if pool else sorted(base_accuracy)


def pick_frontier(frontier: int | str, base_accuracy: dict[int, float], pool: list[int]) -> int | None:
    """The configured difficulty, or for "auto" the hardest pool difficulty the base solves >= 10% of."""
    if frontier != "auto":
        return int(frontier)
    pool = frontier_candidates(pool, base_accuracy)
    reachable = [d for d in sorted(pool) if base_accuracy.get(d, 0.0) >= AUTO_FRONTIER_MIN]
    return reachable[-1] if reachable else (min(pool) if pool else None)


def frontier_of(task, base_accuracy: dict[int, float], measured=()) -> int | None:
    """The experiment's frontier difficulty: `task.frontier` (a `TaskConfig`), or for "auto" the pick
    among its pool, else the `measured` difficulties, else those the base was evaluated on."""
    return pick_frontier(task.frontier, base_accuracy, task.frontier_pool() or sorted(measured))


def pseudo_label_accuracy(verdicts: pl.DataFrame, prompts: pl.DataFrame) -> dict[str, float]:
    """Label-free rounds: how often the majority-vote pseudo-label equals the reference,
    over prompts that have both. An audit only: the verifier never sees the references."""
    from filters.numeric import to_number

    labels = (
        verdicts.filter(pl.col("parsed_reference").is_not_null())
        .group_by("prompt_id")
        .agg(pl.col("parsed_reference").first())
    )
    both = labels.join(prompts.select("prompt_id", "reference"), on="prompt_id").filter(pl.col("reference") != "")
    if both.height == 0:
        return {}

    def same(label: str, ref: str) -> bool:
        a, b = to_number(label), to_number(ref)
        return a == b if a is not None and b is not None else label.strip() == ref.strip()

    right = sum(same(lab, ref) for lab, ref in both.select("parsed_reference", "reference").iter_rows())
    return {"pseudo_labeled_prompts": float(both.height), "pseudo_label_accuracy": right / both.height}


def balance_score(judged: pl.DataFrame, threshold: float, desired: int) -> dict[str, float]:
    """B-STaR's balance score for one (temperature, reward threshold) on a dev slice.

    Per prompt: selected = samples with reward >= threshold; unique = distinct correct
    completions among them (whitespace-normalized); score = min(unique / desired, 1) *
    unique / selected (0 when nothing is selected). Averaged over prompts. The first factor
    rewards exploration (enough distinct right answers), the second exploitation (the
    reward keeps few wrong ones)."""
    norm = pl.col("completion").str.strip_chars().str.replace_all(r"\s+", " ")
    df = judged.with_columns(_sel=pl.col("reward") >= threshold, _text=norm)
    per = (
        df.group_by("prompt_id")
        .agg(
            selected=pl.col("_sel").sum(),
            unique=pl.col("_text").filter(pl.col("_sel") & (pl.col("verdict") == CORRECT)).n_unique(),
            correct=(pl.col("verdict") == CORRECT).sum(),
            n=pl.len(),
        )
        .with_columns(
            score=pl.when(pl.col("selected") > 0)
            .then(pl.min_horizontal(pl.col("unique") / desired, pl.lit(1.0)) * pl.col("unique") / pl.col("selected"))
            .otherwise(0.0)
        )
    )
    return {
        "balance_score": float(cast(float, per["score"].mean())),
        "pass_at_n": float(cast(float, (per["correct"] > 0).mean())),
        "distinct_correct": float(cast(float, per["unique"].mean())),
        "selected_precision": float(cast(int, per["unique"].sum()) / max(cast(int, per["selected"].sum()), 1)),
    }


def solve_rates(judged: pl.DataFrame, prompts: pl.DataFrame) -> dict[int, float]:
    """Share of correct samples per difficulty."""
    df = judged.join(prompts.select("prompt_id", "difficulty"), on="prompt_id")
    rates = df.group_by("difficulty").agg(rate=(pl.col("verdict") == CORRECT).mean()).sort("difficulty")
    return dict(rates.iter_rows())


def pass_rates(judged: pl.DataFrame, prompts: pl.DataFrame) -> dict[int, float]:
    """Share of prompts with at least one correct sample, per difficulty."""
    solved = judged.group_by("prompt_id").agg(ok=(pl.col("verdict") == CORRECT).any())
    solved = solved.join(prompts.select("prompt_id", "difficulty"), on="prompt_id")
    return dict(solved.group_by("difficulty").agg(pl.col("ok").mean()).iter_rows())


def allocate_samples(difficulty: list[int], n: int, rates: dict[int, float], min_n: int, max_n: int) -> list[int]:
    """Difficulty-aware budgets (against tail narrowing): about the same total as n per prompt,
    split in inverse proportion to each difficulty's solve rate, within [min_n, max_n].
    Difficulties with no measured rate get n."""
    floor = 1.0 / max_n
    weight = [1.0 / max(rates[d], floor) if d in rates else None for d in difficulty]
    known = [w for w in weight if w is not None]
    if not known:
        return [n] * len(difficulty)
    scale = n * len(known) / sum(known)
    return [n if w is None else int(min(max_n, max(min_n, round(w * scale)))) for w in weight]


def best_of_k(samples_judged: pl.DataFrame) -> float:
    """Share of prompts whose highest-`score` sample is correct (V-STaR's best-of-k;
    ties go to the lowest sample_idx)."""
    best = (
        samples_judged.sort("prompt_id", "score", "sample_idx", descending=[False, True, False])
        .group_by("prompt_id", maintain_order=True)
        .first()
    )
    return float(cast(float, (best["verdict"] == CORRECT).mean()))


def judge_agreement(judge: pl.DataFrame, reference: pl.DataFrame) -> dict[str, float]:
    """Audit of an LLM judge where references exist (never used for selection): the share of
    scored samples whose judge verdict matches the reference verifier's."""
    keys = ["round", "prompt_id", "sample_idx"]
    both = (
        judge.filter(pl.col("verdict") != UNVERIFIABLE)
        .select(*keys, "verdict")
        .join(reference.select(*keys, pl.col("verdict").alias("truth")), on=keys)
    )
    if both.height == 0:
        return {"judge_agreement": 0.0, "judge_scored_share": 0.0}
    return {
        "judge_agreement": float(cast(float, (both["verdict"] == both["truth"]).mean())),
        "judge_scored_share": both.height / judge.height,
    }


def evaluated_accuracy(store, policy_id: str) -> dict[int, float]:
    """A policy's ("base" or a round key) greedy held-out accuracy per difficulty, from its
    evaluation table in `store` (a selftaught.store.Store); empty before it was evaluated."""
    path = store.evaluation_path(policy_id)
    return accuracy_by_difficulty(read_parquet(path)) if path.is_file() else {}


def zero_std_share(rollouts: pl.DataFrame) -> float:
    """Share of GRPO groups (one prompt's rollouts in one step) whose rewards are all equal: zero
    advantage, no gradient (TRL logs the same per step as frac_reward_zero_std). Unverifiable
    rollouts (no reward) count as a reward of their own."""
    if rollouts.height == 0:
        return float("nan")
    groups = rollouts.group_by("step", "prompt_id").agg(distinct=pl.col("reward").fill_null(float("nan")).n_unique())
    return float((groups["distinct"] == 1).mean())  # type: ignore[arg-type]
