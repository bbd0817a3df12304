"""The one place that declares every table the pipeline writes.

Each table is a polars schema. `validate` checks a frame at a boundary (before it
is written, after it is read) and returns it with columns in declared order.
"""

from __future__ import annotations

import polars as pl

CORRECT, INCORRECT, UNVERIFIABLE = "correct", "incorrect", "unverifiable"
VERDICTS = (CORRECT, INCORRECT, UNVERIFIABLE)

PROMPTS = {
    "prompt_id": pl.String,  # stable across rounds: content-derived
    "split": pl.String,  # warm_start | pool | eval
    "round": pl.String,  # round key for pools, "" otherwise
    "prompt": pl.String,
    "reference": pl.String,  # gold answer; "" when the task has none
    "target": pl.String,  # gold worked solution (completion); "" when none
    "difficulty": pl.Int32,
    "fields": pl.String,  # JSON: every column of the task's row, for a verifier that reads them; null when none
}

SAMPLES = {
    "round": pl.String,
    "prompt_id": pl.String,
    "sample_idx": pl.Int32,
    "policy_id": pl.String,  # "base" or a round key
    "policy_hash": pl.String,  # content hash of the weights that wrote it
    "prompt": pl.String,
    "completion": pl.String,
    "backend": pl.String,
    "temperature": pl.Float64,
    "top_p": pl.Float64,
    "max_new_tokens": pl.Int32,
    "seed": pl.Int64,
}

VERDICTS_TABLE = {
    "round": pl.String,
    "prompt_id": pl.String,
    "sample_idx": pl.Int32,
    "verdict": pl.String,  # correct | incorrect | unverifiable
    "reward": pl.Float64,
    "extracted_answer": pl.String,  # null when nothing could be extracted
    "parsed_reference": pl.String,  # the reference as the verifier read it (pseudo-label for majority)
    "rationale_ok": pl.Boolean,  # null when the verifier cannot check steps
    "reason": pl.String,
    "verifier": pl.String,  # name@version
    "details": pl.String,  # JSON: the sandbox's per-test results and timings; null for other verifiers
}

SFT_ROWS = {
    "row_id": pl.String,  # "<round>/<prompt_id>/<sample_idx>": traceable to a sample
    "source_round": pl.String,  # round whose policy wrote the completion
    "prompt_id": pl.String,
    "sample_idx": pl.Int32,
    "policy_id": pl.String,
    "policy_hash": pl.String,
    "prompt": pl.String,
    "completion": pl.String,
    "reward": pl.Float64,
    "origin": pl.String,  # sample | rationalization | reflection | warm_start
    "repaired_sample_idx": pl.Int32,  # reflection: the failed sample this row repairs; else null
}

# Second attempts (repair.mode): STaR rationalization (the reference as a hint) or
# Re-ReST reflection (a failed sample plus its verifier feedback). Verified against the
# original prompt; kept ones train on the original prompt, hint and feedback removed.
REPAIRS = {
    "round": pl.String,
    "prompt_id": pl.String,
    "repair_idx": pl.Int32,  # unique per prompt
    "mode": pl.String,  # rationalization | reflection
    "failed_sample_idx": pl.Int32,  # reflection: the sample being repaired; null for rationalization
    "feedback": pl.String,  # reflection: what the verifier said (never the reference); null otherwise
    "attempt_prompt": pl.String,  # what the policy saw
    "prompt": pl.String,  # the original prompt (what a training row uses)
    "completion": pl.String,
    "policy_id": pl.String,
    "policy_hash": pl.String,
    "verdict": pl.String,
    "reward": pl.Float64,
    "extracted_answer": pl.String,
    "rationale_ok": pl.Boolean,
    "reason": pl.String,
}

# sampling_plan: per prompt, how many samples at which temperature (B-STaR's choice,
# difficulty-aware budgets) and the reward threshold selection applies.
SAMPLING_PLAN = {
    "prompt_id": pl.String,
    "difficulty": pl.Int32,
    "n": pl.Int32,
    "temperature": pl.Float64,
    "reward_threshold": pl.Float64,
}

PREFERENCE_PAIRS = {
    "row_id": pl.String,
    "source_round": pl.String,
    "prompt_id": pl.String,
    "policy_id": pl.String,
    "prompt": pl.String,
    "chosen": pl.String,
    "rejected": pl.String,
    "chosen_sample_idx": pl.Int32,  # -1: the dataset reference (SPIN)
    "rejected_sample_idx": pl.Int32,
    "chosen_reward": pl.Float64,
    "rejected_reward": pl.Float64,
}

EVAL_RESULTS = {
    "round": pl.String,
    "policy_id": pl.String,
    "prompt_id": pl.String,
    "difficulty": pl.Int32,
    "completion": pl.String,
    "extracted_answer": pl.String,
    "verdict": pl.String,
    "rationale_ok": pl.Boolean,
}

# objective grpo: what the trainer generated and was rewarded on, one row per completion.
# Its samples columns and its verdict columns are the offline tables' own, so pass rates and
# lineage read it the same way; `step` is the training step (policy version) that generated it.
ROLLOUTS = {**SAMPLES, **{k: v for k, v in VERDICTS_TABLE.items() if k not in SAMPLES}, "step": pl.Int64}

# What a round changed against the one before (filters/diff.py): held-out prompts newly
# solved and newly lost, per difficulty, with their ids.
ROUND_DIFF = {
    "round": pl.String,
    "against": pl.String,  # the previous round, or "base"
    "difficulty": pl.Int32,
    "prompts": pl.Int64,  # held-out prompts of this difficulty evaluated in both
    "solved_before": pl.Int64,
    "solved_after": pl.Int64,
    "newly_solved": pl.Int64,
    "newly_lost": pl.Int64,
    "newly_solved_ids": pl.List(pl.String),
    "newly_lost_ids": pl.List(pl.String),
}

# The compute ledger (filters/ledger.py), one row per round: cost, what it produced, derived figures.
LEDGER = {
    "round": pl.String,
    **{
        c: pl.Float64
        for c in (
            "wall_s",
            "cpu_s",
            "peak_rss_mb",
            "tokens_generated",
            "tokens_trained",
            "samples_verified",
            "kept_rows",
            "kept_per_1k_samples",
            "points_per_hour",
            "cost",
            "flops",  # FLOPs of the stages that ran the model (filters/ledger.py's rules)
            "gen_mfu",  # the samples stage's FLOP/s over the machine's matmul ceiling
            "train_mfu",  # the policy stage's
        )
    },
}

# lm-evaluation-harness on a policy (evaluation.lm_eval; filters/lm_eval.py): one row per
# (task, metric, filter), as lm-eval reports it.
LM_EVAL = {
    "round": pl.String,  # the round, or "base"
    "policy_id": pl.String,
    "task": pl.String,
    "metric": pl.String,  # exact_match, acc, ...
    "filter": pl.String,  # lm-eval's filter pipeline ("none" when the task has none)
    "value": pl.Float64,
    "stderr": pl.Float64,  # null when lm-eval gives none
    "samples": pl.Int64,  # documents evaluated
}

TABLES: dict[str, dict] = {
    "prompts": PROMPTS,
    "samples": SAMPLES,
    "verdicts": VERDICTS_TABLE,
    "sft_rows": SFT_ROWS,
    "preference_pairs": PREFERENCE_PAIRS,
    "repairs": REPAIRS,
    "sampling_plan": SAMPLING_PLAN,
    "eval_results": EVAL_RESULTS,
    "rollouts": ROLLOUTS,
    "round_diff": ROUND_DIFF,
    "ledger": LEDGER,
    "lm_eval": LM_EVAL,
}


# Columns added after tables were first written: a table on disk without one reads as if it
# held nulls there, so rounds made before stay readable (and current).
OPTIONAL: dict[str, set[str]] = {"prompts": {"fields"}}


class SchemaError(ValueError):
    """A frame does not match its declared table schema."""


def empty(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=TABLES[table])


def validate(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """Check columns and types of `df` against `table`; cast safe numeric widenings."""
    schema = TABLES[table]
    absent = [c for c in OPTIONAL.get(table, ()) if c not in df.columns]
    if absent:
        df = df.with_columns([pl.lit(None, schema[c]).alias(c) for c in absent])
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise SchemaError(f"table '{table}' is missing column(s) {missing}; got {df.columns}, expected {list(schema)}")
    extra = [c for c in df.columns if c not in schema]
    if extra:
        raise SchemaError(f"table '{table}' has undeclared column(s) {extra}")
    try:
        out = df.select([pl.col(c).cast(t, strict=True) for c, t in schema.items()])
    except pl.exceptions.PolarsError as exc:
        raise SchemaError(f"table '{table}': a column has the wrong type: {exc}") from exc
    if "verdict" in schema:
        bad = out.filter(~pl.col("verdict").is_in(VERDICTS))
        if bad.height:
            raise SchemaError(
                f"table '{table}': verdict must be one of {VERDICTS}, got {bad['verdict'].unique().to_list()[:5]}"
            )
    return out
