"""Wiring for the recipe stages that read more than their own inputs or generate more than
one batch per round: the curriculum, difficulty-aware budgets and prompt bands (earlier
rounds' tables), B-STaR's temperature search, second attempts (STaR rationalization, Re-ReST reflection),
LLM-judge verdicts and V-STaR's verifier pairs. The decisions live in synth/, filters/
and train/; this module reads the store and hands them what they need."""

from __future__ import annotations

from functools import partial

import polars as pl

from assets.context import RoundContext
from assets.generation import generate
from assets.run_log import log_progress
from filters import balance
from filters.judge import judge_prompts, judge_verdicts
from filters.metrics import evaluated_accuracy, pass_rates, solve_rates
from filters.pairs import correctness_pairs
from filters.prompt_band import BandChoice, choose_prompts, latest_solve_rates
from filters.rewards import VerifierReward
from filters.select import judged
from filters.verifiers import verify
from selftaught.files import read_parquet
from selftaught.round_keys import round_index, round_key
from selftaught.store import Store
from synth import curriculum, repair
from synth.backends import SamplingParams
from synth.tasks import selection_verifier
from train.artifact import read_provenance
from train.gguf import resolve_base


def previous_judged(rc: RoundContext) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """The previous round's samples joined with verdicts, and its prompts; None in round 1."""
    parent, store = rc.parent_key, rc.store
    if parent is None:
        return None
    return judged(store.read_table("samples", parent), store.read_table("verdicts", parent)), store.read_table(
        "prompts", parent
    )


# ---- prompts and sampling plan ----------------------------------------------------------------


def prompts_by_band(rc: RoundContext, fresh: pl.DataFrame) -> BandChoice:
    """sampling.prompt_band (filters.prompt_band): earlier rounds' prompts in the band, by the
    solve rate their samples and verdicts (or a GRPO round's rollouts) measured, then fresh ones."""
    band, store = rc.config.sampling.prompt_band, rc.store
    if band is None:
        raise ValueError("prompts_by_band runs for sampling.prompt_band, which this config does not set")
    if band.measure == "probe":  # the parent policy's own solve rates on this round's fresh pool
        out = rc.sample(f"{rc.key}-probe", fresh, rc.params(rc.config.sampling.temperature, band.probe_samples))
        rates = latest_solve_rates([(rc.key, judged(out, verdicts_for(rc, fresh, out, "probe")))])
        return choose_prompts(fresh, fresh, rates, band.low, band.high, band.fill, rc.key)
    earlier, judged_by_round = [], []
    for i in range(1, rc.index):
        key = round_key(i)
        earlier.append(store.read_table("prompts", key))
        rollouts = store.table_path("rollouts", key)
        if rollouts.is_file() and (table := store.read_table("rollouts", key)).height:
            judged_by_round.append((key, table))
        elif store.table_path("verdicts", key).is_file():
            judged_by_round.append((key, judged(store.read_table("samples", key), store.read_table("verdicts", key))))
    earlier_prompts = pl.concat(earlier, how="vertical_relaxed") if earlier else fresh.head(0)
    return choose_prompts(
        fresh, earlier_prompts, latest_solve_rates(judged_by_round), band.low, band.high, band.fill, rc.key
    )


def curriculum_counts(rc: RoundContext) -> tuple[int, dict[int, int]]:
    """This round's curriculum level and pool sizes (synth.curriculum)."""
    previous = previous_judged(rc)
    rates = pass_rates(*previous) if previous else {}
    return curriculum.round_counts(rc.config.task, evaluated_accuracy(rc.store, "base"), rates)


def budget_rates(rc: RoundContext) -> dict[int, float]:
    """Per-difficulty solve rates behind difficulty-aware budgets: the previous round's
    samples, or for round 1 the base model's greedy evaluation."""
    previous = previous_judged(rc)
    if previous is not None:
        return solve_rates(*previous)
    path = rc.store.evaluation_path("base")
    if not path.is_file():
        return {}
    ev = read_parquet(path)
    return solve_rates(ev.select("prompt_id", "verdict"), ev.select("prompt_id", "difficulty"))


def balance_search(rc: RoundContext, prompts: pl.DataFrame) -> balance.Choice:
    """B-STaR (filters.balance) on a dev slice of this round's pool."""
    cfg = rc.config
    b = cfg.sampling.balance
    if b is None:
        raise ValueError("balance_search runs for sampling.balance, which this config does not set")
    dev = prompts.sort("prompt_id").head(b.dev_prompts)

    def judged_at(t: float) -> pl.DataFrame:
        out = rc.sample(f"{rc.key}-balance-t{t:g}", dev, rc.params(t, cfg.sampling.n))
        return judged(out, verdicts_for(rc, dev, out, f"balance-t{t:g}"))

    return balance.search(b, cfg.sampling.temperature, judged_at)


def sample_by_plan(rc: RoundContext, prompts: pl.DataFrame, sampling_plan: pl.DataFrame) -> pl.DataFrame:
    """One generation job per (n, temperature) group of the plan; one group keeps the
    plain job name (the common case)."""
    groups = sampling_plan.group_by("n", "temperature").agg("prompt_id").sort("n", "temperature")
    parts = []
    for n, t, ids in groups.iter_rows():
        name = f"{rc.key}-samples" if groups.height == 1 else f"{rc.key}-samples-n{n}-t{t:g}"
        parts.append(rc.sample(name, prompts.filter(pl.col("prompt_id").is_in(ids)), rc.params(t, n)))
    return pl.concat(parts).sort("prompt_id", "sample_idx")


# ---- verdicts -----------------------------------------------------------------------------------


def verdicts_for(rc: RoundContext, prompts: pl.DataFrame, samples: pl.DataFrame, label: str = "judge") -> pl.DataFrame:
    """The configured verifier's verdicts; a verifier that generates (the LLM judge) scores each
    sample with a model."""
    if not rc.verifier.plugin.caps.generates:
        return rc.check(prompts, samples)
    cfg, store = rc.config, rc.store
    j = cfg.verification.judge
    artifact = {"policy": rc.parent.artifact, "base": store.model_dir("base")}.get(j.model) or resolve_base(
        j.model, rc.context.log.info
    )  # a folder, or a .gguf converted once
    backend = j.backend or cfg.eval_backend()
    judge_id = (
        f"openai:{j.openai.model}"
        if backend == "openai" and j.openai
        else rc.parent.policy_id
        if j.model == "policy"
        else j.model
    )
    asks = judge_prompts(samples, j.template, rc.user_turn)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=j.max_new_tokens)  # greedy: a judge is deterministic
    out = generate(
        rc.context,
        cfg,
        store,
        name=f"{rc.key}-{label}",
        prompts=asks,
        params=params,
        round_key=rc.key,
        policy_id=judge_id,
        policy_hash=_hash_of(artifact, backend),
        artifact=artifact,
        backend=backend,
        batch_size=cfg.evaluation.batch_size,
        openai=j.openai,
        progress=log_progress(rc.context, f"{rc.key} {label}"),
    )
    return judge_verdicts(samples, out, judge_id, j.max_score, j.threshold)


def _hash_of(artifact, backend: str) -> str:
    try:
        return read_provenance(artifact)["weights_hash"] if backend != "openai" else ""
    except (OSError, KeyError, ValueError):
        return ""


# ---- second attempts ------------------------------------------------------------------------------


def second_attempts(
    rc: RoundContext, prompts: pl.DataFrame, samples: pl.DataFrame, verdicts: pl.DataFrame
) -> pl.DataFrame:
    """synth.repair.second_attempts, sampled by the parent policy and checked by the verifier."""
    cfg = rc.config

    def sample(attempts: pl.DataFrame, n: int) -> pl.DataFrame:
        return rc.sample(f"{rc.key}-repairs", attempts, rc.params(cfg.sampling.temperature, n))

    return repair.second_attempts(
        cfg.repair,
        prompts,
        judged(samples, verdicts),
        rc.user_turn,
        sample,
        rc.check,
        rc.log,
        feedback_mode=rc.verifier.plugin.caps.feedback,
    )


def repair_format_examples(cfg, warm: pl.DataFrame, turn=None) -> pl.DataFrame:
    """Warm-start rows in the repair format (synth.repair.warm_start_examples)."""
    verifier = selection_verifier(cfg)
    return repair.warm_start_examples(
        cfg.repair, warm, turn, partial(verify, verifier), feedback_mode=verifier.plugin.caps.feedback
    )


# ---- online RL (training.objective grpo) ---------------------------------------------------------


def rollout_prompts(cfg, prompts: pl.DataFrame) -> pl.DataFrame:
    """What GRPO rolls out on: this round's prompts, with their references unless label-free,
    and their row's columns (`fields`) for a verifier that reads them (TRL passes every
    dataset column to the reward function)."""
    reads_rows = cfg.verifier_plugin().caps.columns and "fields" in prompts.columns
    return prompts.select(
        "prompt_id", "prompt", *([] if cfg.label_free() else ["reference"]), *(["fields"] if reads_rows else [])
    ).with_columns(*([pl.col("fields").fill_null("{}")] if reads_rows else []))


def rollout_reward(rc: RoundContext, seed: int) -> VerifierReward:
    """The configured verifier as GRPO's reward; it writes every rollout to work/<round>-rollouts
    (`seed`: the trainer's, recorded with each rollout)."""
    cfg = rc.config
    g = cfg.training.grpo_settings()
    return VerifierReward(
        rc.verifier,
        rc.store.work_dir(f"{rc.key}-rollouts"),
        rc.key,
        policy_id=rc.key,
        max_unverifiable_share=cfg.verification.max_unverifiable_share,
        generation={
            "temperature": g.temperature,
            "top_p": g.top_p,
            "max_new_tokens": g.max_completion_length,
            "seed": seed,
        },
    )


# ---- V-STaR verifier --------------------------------------------------------------------------------


def verifier_pairs(store: Store, key: str, max_per_prompt: int) -> pl.DataFrame:
    """(correct, incorrect) pairs of every round up to `key` (V-STaR keeps all of them)."""
    parts = []
    for i in range(1, round_index(key) + 1):
        k = round_key(i)
        parts.append(correctness_pairs(store.read_table("samples", k), store.read_table("verdicts", k), max_per_prompt))
    return pl.concat(parts)
