"""Wiring from the experiment config to a sharded generation job (synth.generate)."""

from __future__ import annotations

from typing import cast

import polars as pl

from assets.run_log import log_progress
from filters.evaluate import eval_params, score
from filters.lm_eval import LmEvalSettings, lm_eval_version, run_lm_eval
from filters.lm_eval import metadata as lm_eval_metadata
from filters.metrics import best_of_k, per_prompt
from filters.select import judged
from filters.verifiers import verify
from selftaught.config import ExperimentConfig
from selftaught.hardware import resolve_dtype
from selftaught.store import Store
from synth.backends import SamplingParams
from synth.generate import GenerationJob, run, run_isolated
from synth.tasks import reference_verifier
from train.artifact import model_path, read_provenance, serving_paths, verifier_dir
from train.score import dpo_scores


def backend_options(cfg: ExperimentConfig, backend: str, batch_size: int, openai=None) -> dict:
    s = cfg.sampling
    if backend == "hf":
        return {"batch_size": batch_size, "dtype": resolve_dtype(s.dtype)}  # auto: decided here, kept in the job
    if backend == "vllm":
        return {**s.vllm.model_dump(), "seed": s.seed}
    openai = openai or s.openai
    if openai is None:  # model_dump would fail on it
        raise ValueError("the openai backend needs sampling.openai")
    return openai.model_dump()


def generate(
    context,
    cfg: ExperimentConfig,
    store: Store,
    *,
    name: str,
    prompts: pl.DataFrame,
    params: SamplingParams,
    round_key: str,
    policy_id: str,
    policy_hash: str,
    artifact,
    backend: str,
    batch_size: int,
    progress=None,
    openai=None,
) -> pl.DataFrame:
    """Sample `prompts` with the policy in `artifact` (or the configured server), resumably.

    `artifact` is a selftaught model artifact or a plain model directory; `openai` overrides
    sampling.openai (a judge's own server). Shards live in the store's work/<name>; a rerun
    of a crashed step reuses them.
    """
    openai = openai or cfg.sampling.openai
    if backend == "openai":
        model_dir, adapter = None, None
        policy_id, policy_hash = f"openai:{openai.model}", ""
    elif not model_path(artifact).is_dir():
        model_dir, adapter = str(artifact), None
    else:
        model_dir, adapter = serving_paths(artifact, store.model_dir("base"), backend)
    job = GenerationJob(
        backend=backend,
        model_dir=model_dir,
        adapter_dir=adapter,
        params=params,
        out_dir=str(store.work_dir(name)),
        round=round_key,
        policy_id=policy_id,
        policy_hash=policy_hash,
        shard_size=cfg.sampling.shard_size,
        options=backend_options(cfg, backend, batch_size, openai),
    )
    where = f"{model_dir} + adapter {adapter}" if adapter else (model_dir or openai.base_url)
    isolated = cfg.sampling.isolated()
    context.log.info(f"{name}: {backend} backend on {where}, {'in a subprocess' if isolated else 'in process'}")
    if isolated:
        workers = cfg.sampling.data_parallel if backend in ("hf", "vllm") else 1
        return run_isolated(
            job,
            prompts,
            context.log.info,
            workers=workers,
            gpus_per_worker=cfg.sampling.vllm.tensor_parallel_size if backend == "vllm" else 1,
        )
    return run(job, prompts, progress)


def evaluate_artifact(context, experiment, eval_prompts: pl.DataFrame, policy_id: str, artifact) -> pl.DataFrame:
    """Greedy generation on the eval prompts (sharded, resumable) and the reference verifier."""
    cfg = experiment.config
    samples = _generate_eval(
        context, experiment, eval_prompts, policy_id, artifact, "eval", eval_params(cfg.evaluation.max_new_tokens)
    )
    return score(samples, eval_prompts, reference_verifier(cfg))


def _generate_eval(
    context, experiment, eval_prompts: pl.DataFrame, policy_id: str, artifact, label: str, params: SamplingParams
) -> pl.DataFrame:
    """Generation on the held-out prompts with the policy in `artifact` (evaluation backend)."""
    cfg = experiment.config
    return generate(
        context,
        cfg,
        experiment.store,
        name=f"{policy_id}-{label}",
        prompts=eval_prompts,
        params=params,
        round_key=policy_id,
        policy_id=policy_id,
        policy_hash=read_provenance(artifact)["weights_hash"],
        artifact=artifact,
        backend=cfg.eval_backend(),
        batch_size=cfg.evaluation.batch_size,
        progress=log_progress(context, f"{policy_id} {label}"),
    )


def sampled_eval_metrics(context, experiment, eval_prompts: pl.DataFrame, policy_id: str, artifact) -> dict:
    """With evaluation.samples_per_prompt = k > 0: k samples per held-out prompt at
    evaluation.temperature, scored against the references: pass@k, maj@k, distinct
    answers per prompt and the spread of per-prompt solve rates (B-STaR's exploration)."""
    cfg = experiment.config
    k = cfg.evaluation.samples_per_prompt
    if not k:
        return {}
    params = SamplingParams(
        n=k,
        temperature=cfg.evaluation.temperature,
        top_p=cfg.sampling.top_p,
        max_new_tokens=cfg.evaluation.max_new_tokens,
        seed=cfg.evaluation.seed,
    )
    samples = _generate_eval(context, experiment, eval_prompts, policy_id, artifact, f"eval-k{k}", params)
    verdicts = verify(reference_verifier(cfg), eval_prompts, samples)
    df = judged(samples, verdicts)
    pp = per_prompt(df)
    out = {
        f"eval_pass@{k}": float(cast(float, (pp["correct"] > 0).mean())),
        f"eval_maj@{k}": float(cast(float, pp["majority_correct"].mean())),
        "eval_sample_accuracy": float(cast(float, pp["solve_rate"].mean())),
        "eval_distinct_answers": float(cast(float, pp["distinct_answers"].mean())),
        "eval_solve_rate_std": float(cast(float | None, pp["solve_rate"].std()) or 0.0),
    }
    verifier = model_path(verifier_dir(artifact))
    if verifier.is_dir():
        scores = dpo_scores(
            verifier,
            experiment.store.model_dir("base") / "model",
            df["prompt"].to_list(),
            df["completion"].to_list(),
            cfg.evaluation.batch_size,
        )
        out[f"eval_best_of@{k}"] = best_of_k(df.with_columns(score=pl.Series(scores)))
    return out


def lm_eval_metrics(context, experiment, policy_id: str, artifact) -> dict:
    """With evaluation.lm_eval: lm-evaluation-harness on the policy in `artifact`; its table is
    written as the `lm_eval` table of `policy_id` ("base" or the round) and its numbers returned
    as metadata."""
    cfg = experiment.config
    le = cfg.evaluation.lm_eval
    if le is None:
        return {}
    settings = LmEvalSettings(
        tasks=tuple(le.tasks),
        include_path=le.include_path,
        include_defaults=le.include_defaults,
        limit=le.limit,
        num_fewshot=le.num_fewshot,
        batch_size=le.batch_size,
        apply_chat_template=le.apply_chat_template,
        seed=cfg.evaluation.seed,
    )
    context.log.info(f"{policy_id}: lm-eval {lm_eval_version()} on {', '.join(le.tasks)}")
    table = run_lm_eval(model_path(artifact), settings, policy_id, policy_id, resolve_dtype(cfg.sampling.dtype))
    path = experiment.store.write_table(table, "lm_eval", policy_id, schema="lm_eval")
    return {
        **lm_eval_metadata(table),
        "lm_eval_version": lm_eval_version(),
        "lm_eval_table": experiment.store.where(path),
    }
