"""Held-out evaluation: greedy decoding, the task's verifier, exact match."""

from __future__ import annotations

import polars as pl

from filters.verifiers import Verifier, verify
from selftaught import schemas
from synth.backends import Backend, Progress, SamplingParams
from synth.sampling import sample


def evaluate_policy(
    backend: Backend,
    eval_prompts: pl.DataFrame,
    verifier: Verifier,
    max_new_tokens: int,
    round_key: str,
    policy_id: str,
    progress: Progress | None = None,
) -> pl.DataFrame:
    samples = sample(backend, eval_prompts, eval_params(max_new_tokens), round_key, policy_id, "", progress)
    return score(samples, eval_prompts, verifier)


def eval_params(max_new_tokens: int) -> SamplingParams:
    return SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens)


def score(samples: pl.DataFrame, eval_prompts: pl.DataFrame, verifier: Verifier) -> pl.DataFrame:
    """Greedy samples of the eval prompts -> the eval_results table."""
    verdicts = verify(verifier, eval_prompts, samples)
    out = (
        samples.join(verdicts, on=["round", "prompt_id", "sample_idx"])
        .join(eval_prompts.select("prompt_id", "difficulty"), on="prompt_id")
        .select(list(schemas.EVAL_RESULTS))
    )
    return schemas.validate(out, "eval_results")
