"""Wiring for the recipe stages that generate more than one batch per round: B-STaR's
temperature search, difficulty-aware budgets, second attempts (STaR rationalization,
Re-ReST reflection), LLM-judge verdicts and V-STaR's verifier. The logic lives in
synth/filters/train; this module only moves frames between them and the store."""

from __future__ import annotations

import polars as pl

from assets.generation import generate
from assets.progress import log_progress
from filters.feedback import feedback, with_feedback
from filters.judge import judge_prompts, judge_verdicts
from filters.metrics import accuracy_by_difficulty, allocate_samples, balance_score, pick_frontier, solve_rates
from filters.pairs import correctness_pairs
from filters.select import judged
from filters.verifiers import get_verifier, verify
from selftaught import schemas
from selftaught.rounds import parent_key, round_index, round_key
from selftaught.files import read_parquet
from synth.backends import SamplingParams
from synth.curriculum import level as curriculum_level
from synth.curriculum import pool_counts as curriculum_pool
from synth.repair import hinted_examples, rationalize_attempts, reflect_attempts, reflection_examples
from synth.tasks import default_verifier
from train.artifact import read_provenance
from train.gguf import resolve_base


def sample_params(cfg, key: str, temperature: float, n: int) -> SamplingParams:
    s = cfg.sampling
    return SamplingParams(n=n, temperature=temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                          seed=s.seed * 1000 + round_index(key), stop=s.stop)


def _sample(context, experiment, parent, key: str, name: str, prompts: pl.DataFrame,
            params: SamplingParams) -> pl.DataFrame:
    cfg = experiment.config
    return generate(context, cfg, experiment.store, name=name, prompts=prompts, params=params, round_key=key,
                    policy_id=parent.policy_id, policy_hash=parent.weights_hash, artifact=parent.artifact,
                    backend=cfg.sampling.backend, batch_size=cfg.sampling.batch_size,
                    progress=log_progress(context, name))


def verifier_for(cfg):
    return get_verifier(cfg.verification.verifier or default_verifier(cfg.task), cfg.verification)


# ---- curriculum ---------------------------------------------------------------------------

def curriculum_counts(experiment, key: str) -> tuple[int, dict[int, int]]:
    """This round's level and pool sizes (synth.curriculum), from the base evaluation
    (the frontier) and the previous round's samples."""
    cfg, store = experiment.config, experiment.store
    base_path = store.table_path("eval_results", "base")
    base = accuracy_by_difficulty(read_parquet(base_path)) if base_path.is_file() else {}
    frontier = pick_frontier(cfg.task.frontier, base, cfg.task.frontier_pool()) or min(cfg.task.pool)
    rates = {}
    parent = parent_key(key)
    if parent is not None:
        df = judged(store.read_table("samples", parent), store.read_table("verdicts", parent))
        solved = df.group_by("prompt_id").agg(ok=(pl.col("verdict") == schemas.CORRECT).any())
        solved = solved.join(store.read_table("prompts", parent).select("prompt_id", "difficulty"), on="prompt_id")
        rates = dict(solved.group_by("difficulty").agg(pl.col("ok").mean()).iter_rows())
    c = cfg.task.curriculum
    at = curriculum_level(frontier, rates, c.open_at)
    return at, curriculum_pool(cfg.task.pool, at, c.probe)


# ---- sampling plan -------------------------------------------------------------------------

def balance_search(context, experiment, parent, key: str, prompts: pl.DataFrame) -> tuple[float, float, list[dict]]:
    """B-STaR: sample a dev slice of the pool at each candidate temperature, score every
    (temperature, threshold) by the balance score; return the best and the whole table."""
    cfg = experiment.config
    b = cfg.sampling.balance
    dev = prompts.sort("prompt_id").head(b.dev_prompts)
    table = []
    for t in b.temperatures:
        params = sample_params(cfg, key, t, cfg.sampling.n)
        out = _sample(context, experiment, parent, key, f"{key}-balance-t{t:g}", dev, params)
        df = judged(out, verdicts_for(context, experiment, parent, key, dev, out, f"balance-t{t:g}"))
        for tau in b.thresholds:
            table.append({"temperature": t, "threshold": tau, **balance_score(df, tau, b.desired_correct)})
    best = max(table, key=lambda r: (r["balance_score"], -abs(r["temperature"] - cfg.sampling.temperature)))
    return best["temperature"], best["threshold"], table


def budget_rates(experiment, key: str) -> dict[int, float]:
    """Per-difficulty solve rates behind difficulty-aware budgets: the previous round's
    samples, or for round 1 the base model's greedy evaluation."""
    store = experiment.store
    parent = parent_key(key)
    if parent is None:
        path = store.table_path("eval_results", "base")
        if not path.is_file():
            return {}
        ev = read_parquet(path)
        return solve_rates(ev.select("prompt_id", "verdict"), ev.select("prompt_id", "difficulty"))
    df = judged(store.read_table("samples", parent), store.read_table("verdicts", parent))
    return solve_rates(df, store.read_table("prompts", parent))


def plan(prompts: pl.DataFrame, cfg, temperature: float, threshold: float | None,
         rates: dict[int, float]) -> pl.DataFrame:
    b = cfg.sampling.budget
    diffs = prompts["difficulty"].to_list()
    n = allocate_samples(diffs, cfg.sampling.n, rates, b.min_n, b.max_n) if b.mode == "solve_rate" \
        else [cfg.sampling.n] * len(diffs)
    df = prompts.select("prompt_id", "difficulty").with_columns(
        n=pl.Series(n, dtype=pl.Int32), temperature=pl.lit(temperature),
        reward_threshold=pl.lit(threshold, pl.Float64))
    return schemas.validate(df, "sampling_plan")


def sample_by_plan(context, experiment, parent, key: str, prompts: pl.DataFrame,
                   sampling_plan: pl.DataFrame) -> pl.DataFrame:
    """One generation job per (n, temperature) group of the plan; one group keeps the
    plain job name (the common case)."""
    cfg = experiment.config
    groups = sampling_plan.group_by("n", "temperature").agg("prompt_id").sort("n", "temperature")
    parts = []
    for n, t, ids in groups.iter_rows():
        name = f"{key}-samples" if groups.height == 1 else f"{key}-samples-n{n}-t{t:g}"
        part = prompts.filter(pl.col("prompt_id").is_in(ids))
        parts.append(_sample(context, experiment, parent, key, name, part, sample_params(cfg, key, t, n)))
    return pl.concat(parts).sort("prompt_id", "sample_idx")


# ---- verdicts -------------------------------------------------------------------------------

def verdicts_for(context, experiment, parent, key: str, prompts: pl.DataFrame, samples: pl.DataFrame,
                 label: str = "judge") -> pl.DataFrame:
    """The configured verifier's verdicts; for `judge`, an LLM scores each sample."""
    cfg = experiment.config
    if (cfg.verification.verifier or default_verifier(cfg.task)) != "judge":
        return verify(verifier_for(cfg), prompts, samples)
    j = cfg.verification.judge
    store = experiment.store
    artifact = {"policy": parent.artifact, "base": store.model_dir("base")}.get(j.model) or \
        resolve_base(j.model, context.log.info)  # a folder, or a .gguf converted once
    backend = j.backend or cfg.eval_backend()
    judge_id = f"openai:{j.openai.model}" if backend == "openai" else \
        parent.policy_id if j.model == "policy" else j.model
    asks = judge_prompts(samples, j.template, experiment.user_turn(context.log.info))
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=j.max_new_tokens)  # greedy: a judge is deterministic
    out = generate(context, cfg, store, name=f"{key}-{label}", prompts=asks, params=params, round_key=key,
                   policy_id=judge_id, policy_hash=_hash_of(artifact, backend), artifact=artifact,
                   backend=backend, batch_size=cfg.evaluation.batch_size, openai=j.openai,
                   progress=log_progress(context, f"{key} {label}"))
    return judge_verdicts(samples, out, judge_id, j.max_score, j.threshold)


def _hash_of(artifact, backend: str) -> str:
    try:
        return read_provenance(artifact)["weights_hash"] if backend != "openai" else ""
    except (OSError, KeyError, ValueError):
        return ""


# ---- second attempts ------------------------------------------------------------------------

def repair(context, experiment, parent, key: str, prompts: pl.DataFrame, samples: pl.DataFrame,
           verdicts: pl.DataFrame) -> pl.DataFrame:
    """Second attempts (repair.mode), verified against the original prompts."""
    cfg = experiment.config
    r = cfg.repair
    if r.mode == "none":
        return schemas.empty("repairs")
    df = judged(samples, verdicts)
    turn = experiment.user_turn(context.log.info)
    if r.mode == "rationalize":
        attempts = rationalize_attempts(prompts, df, r.prompt_template(), turn)
    else:
        attempts = reflect_attempts(with_feedback(df), r.prompt_template(), r.max_failed_per_prompt, turn)
    if attempts.height == 0:
        return schemas.empty("repairs")
    context.log.info(f"{key}: {attempts.height} {r.mode} attempts x {r.n}")
    params = sample_params(cfg, key, cfg.sampling.temperature, r.n)
    out = _sample(context, experiment, parent, key, f"{key}-repairs",
                  attempts.select(pl.col("attempt_id").alias("prompt_id"), pl.col("attempt_prompt").alias("prompt")),
                  params)
    rows = out.rename({"prompt_id": "attempt_id", "prompt": "attempt_prompt"}).join(
        attempts.drop("attempt_prompt"), on="attempt_id")
    rows = rows.sort("prompt_id", "attempt_id", "sample_idx").with_columns(
        repair_idx=pl.int_range(pl.len()).over("prompt_id").cast(pl.Int32))
    as_samples = rows.select("round", "prompt_id", pl.col("repair_idx").alias("sample_idx"), "prompt", "completion")
    checked = verify(verifier_for(cfg), prompts, as_samples).rename({"sample_idx": "repair_idx"})
    full = rows.join(checked, on=["round", "prompt_id", "repair_idx"])
    return schemas.validate(full.with_columns(
        mode=pl.lit("rationalization" if r.mode == "rationalize" else "reflection")).select(list(schemas.REPAIRS)),
        "repairs")


def repair_format_examples(cfg, warm: pl.DataFrame, turn=None) -> pl.DataFrame:
    """Warm-start rows in the repair format (repair.warm_start_share): hinted prompts, or
    reflections on another example's solution, verified wrong here, with its real feedback.
    `turn`: a chat task's user turn (synth.tasks.UserTurn)."""
    r = cfg.repair
    if r.mode == "rationalize":
        return hinted_examples(warm, r.warm_start_share, r.prompt_template(), turn)
    ordered = warm.sort("prompt_id")
    wrong = ordered["target"].shift(1, fill_value=ordered["target"][-1])  # the previous example's solution
    attempts = ordered.select(pl.lit("warm").alias("round"), "prompt_id", pl.lit(0).alias("sample_idx"), "prompt",
                              completion=wrong)
    checked = verify(verifier_for(cfg), ordered, attempts)
    notes = [None if v == schemas.CORRECT else feedback(v, a, why or "", name)
             for v, a, why, name in checked.select("verdict", "extracted_answer", "reason", "verifier").iter_rows()]
    return reflection_examples(ordered, r.warm_start_share, r.prompt_template(), wrong.to_list(), notes, turn)


# ---- V-STaR verifier ------------------------------------------------------------------------

def verifier_pairs(store, key: str, max_per_prompt: int) -> pl.DataFrame:
    """(correct, incorrect) pairs of every round up to `key` (V-STaR keeps all of them)."""
    parts = []
    for i in range(1, round_index(key) + 1):
        k = round_key(i)
        parts.append(correctness_pairs(store.read_table("samples", k), store.read_table("verdicts", k),
                                       max_per_prompt))
    return pl.concat(parts)
