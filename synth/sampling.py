"""Turn a prompts table into a samples table with a backend."""

from __future__ import annotations

from typing import Any

import polars as pl

from filters.metrics import allocate_samples
from selftaught import schemas
from selftaught.seeds import sampling_round_seed
from synth.backends import Backend, Progress, SamplingParams


def round_params(s, index: int, temperature: float, n: int) -> SamplingParams:
    """A round's sampling parameters from a `SamplingConfig` at `temperature`, `n` per prompt."""
    return SamplingParams(
        n=n,
        temperature=temperature,
        top_p=s.top_p,
        max_new_tokens=s.max_new_tokens,
        seed=sampling_round_seed(s.seed, index),
        stop=s.stop,
    )


def plan(
    prompts: pl.DataFrame, s, temperature: float, threshold: float | None, rates: dict[int, float]
) -> pl.DataFrame:
    """The sampling_plan table: per prompt, samples to draw (`s.n`, or by solve rate with
    `s.budget.mode` solve_rate: `rates` per difficulty), the temperature and reward threshold."""
    b = s.budget
    diffs = prompts["difficulty"].to_list()
    n = allocate_samples(diffs, s.n, rates, b.min_n, b.max_n) if b.mode == "solve_rate" else [s.n] * len(diffs)
    df = prompts.select("prompt_id", "difficulty").with_columns(
        n=pl.Series(n, dtype=pl.Int32), temperature=pl.lit(temperature), reward_threshold=pl.lit(threshold, pl.Float64)
    )
    return schemas.validate(df, "sampling_plan")


def sample(
    backend: Backend,
    prompts: pl.DataFrame,
    params: SamplingParams,
    round_key: str,
    policy_id: str,
    policy_hash: str,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Generate `params.n` completions per prompt; one row per completion."""
    completions = backend.generate(prompts["prompt"].to_list(), params, progress)
    return to_samples(prompts, completions, params, round_key, policy_id, policy_hash, backend.name)


def to_samples(
    prompts: pl.DataFrame,
    completions: list[list[str]],
    params: SamplingParams,
    round_key: str,
    policy_id: str,
    policy_hash: str,
    backend_name: str,
) -> pl.DataFrame:
    """The samples table for `completions[i][j]` = sample j of prompt i."""
    if len(completions) != prompts.height:
        raise RuntimeError(f"backend {backend_name} answered {len(completions)} prompts, expected {prompts.height}")
    rows: dict[str, list[Any]] = {c: [] for c in ("prompt_id", "sample_idx", "prompt", "completion")}
    for pid, prompt, outs in zip(prompts["prompt_id"], prompts["prompt"], completions, strict=True):
        if len(outs) != params.n:
            raise RuntimeError(f"backend {backend_name} returned {len(outs)} samples for {pid}, expected {params.n}")
        for i, text in enumerate(outs):
            rows["prompt_id"].append(pid)
            rows["sample_idx"].append(i)
            rows["prompt"].append(prompt)
            rows["completion"].append(text)
    df = pl.DataFrame(rows).with_columns(
        pl.lit(round_key).alias("round"),
        pl.lit(policy_id).alias("policy_id"),
        pl.lit(policy_hash).alias("policy_hash"),
        pl.lit(backend_name).alias("backend"),
        pl.lit(params.temperature).alias("temperature"),
        pl.lit(params.top_p).alias("top_p"),
        pl.lit(params.max_new_tokens).alias("max_new_tokens"),
        pl.lit(params.seed).alias("seed"),
    )
    return schemas.validate(df.select(list(schemas.SAMPLES)), "samples")
