"""One asset per stage of a round, partitioned by round key (r001, r002, ...).

    prompts -> samples -> verdicts -> training_set -> policy -> evaluation
                  ^ (policy of round k-1, looked up at run time)
"""


import time

import dagster as dg
import polars as pl

from assets.generation import evaluate_artifact, generate, sampled_eval_metrics
from assets.lineage import parent_metadata, resolve_parent
from assets.progress import log_progress
from assets.resources import ExperimentResource
from filters.metrics import accuracy_by_difficulty, pick_frontier, pseudo_label_accuracy, sample_metrics
from filters.pairs import correctness_pairs
from filters.select import accumulate, judged, select_sft
from filters.verifiers import get_verifier, verify
from selftaught import __version__, schemas
from selftaught.rounds import parent_key, round_index
from selftaught.store import file_hash, publish_dir
from synth.backends import SamplingParams
from synth.tasks import default_verifier, make_task
from train.artifact import adapter_path, is_complete, model_path, read_provenance, write_provenance
from train.dpo import DPOSettings, train_dpo
from train.sft import settings_from_config, train_sft

rounds = dg.DynamicPartitionsDefinition(name="rounds")
# code_version: the Dagster UI marks materializations of an older selftaught as stale.
ROUND = {"partitions_def": rounds, "group_name": "round", "code_version": __version__}


@dg.asset(**ROUND, kinds={"polars"})
def prompts(
    context: dg.AssetExecutionContext,
    experiment: ExperimentResource,
    warm_start_prompts: pl.DataFrame,
    eval_prompts: pl.DataFrame,
) -> pl.DataFrame:
    """A fresh unlabeled pool for this round, disjoint from warm start and eval."""
    experiment = experiment.of(context)
    exclude = set(warm_start_prompts["prompt_id"]) | set(eval_prompts["prompt_id"])
    df = make_task(experiment.config.task, experiment.config.model.base).pool(round_index(context.partition_key), exclude)
    counts = df.group_by("difficulty").len().sort("difficulty")
    context.add_output_metadata({f"prompts_d{d}": n for d, n in counts.iter_rows()})
    return df


@dg.asset(**ROUND, kinds={"pytorch"}, tags={"selftaught/resource": "gpu"})
def samples(context: dg.AssetExecutionContext, experiment: ExperimentResource, prompts: pl.DataFrame) -> pl.DataFrame:
    """n completions per prompt from the parent round's policy (base model for round 1)."""
    experiment = experiment.of(context)
    cfg, key = experiment.config, context.partition_key
    parent = resolve_parent(context, experiment.store)
    s = cfg.sampling
    params = SamplingParams(n=s.n, temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                            seed=s.seed * 1000 + round_index(key), stop=s.stop)
    context.log.info(f"{key}: sampling {prompts.height} prompts x {s.n} with policy {parent.policy_id}")
    started = time.monotonic()
    df = generate(context, cfg, experiment.store, name=f"{key}-samples", prompts=prompts, params=params,
                  round_key=key, policy_id=parent.policy_id, policy_hash=parent.weights_hash,
                  artifact=parent.artifact, backend=s.backend, batch_size=s.batch_size,
                  progress=log_progress(context, f"{key} sampling"))
    seconds = time.monotonic() - started
    context.add_output_metadata({**parent_metadata(parent), "temperature": s.temperature, "n": s.n,
                                 "seed": params.seed, "backend": s.backend, "generation_seconds": round(seconds, 1),
                                 "samples_per_second": round(df.height / max(seconds, 1e-9), 1)})
    return df


@dg.asset(
    **ROUND,
    kinds={"python"},
    check_specs=[dg.AssetCheckSpec("unverifiable_share", asset="verdicts", blocking=True,
                                   description="stops the round when too many samples could not be verified")],
)
def verdicts(context: dg.AssetExecutionContext, experiment: ExperimentResource, prompts: pl.DataFrame,
             samples: pl.DataFrame):
    """correct / incorrect / unverifiable per sample, with the extracted answer and a reason."""
    experiment = experiment.of(context)
    cfg = experiment.config
    name = cfg.verification.verifier or default_verifier(cfg.task)
    df = verify(get_verifier(name, cfg.verification), prompts, samples)
    m = sample_metrics(judged(samples, df), prompts)
    if name == "majority":
        m.update(pseudo_label_accuracy(df, prompts))
    yield dg.Output(df, metadata={k: float(v) for k, v in m.items()})
    bound = cfg.verification.max_unverifiable_share
    share = m["unverifiable_share"]
    reasons = df.filter(pl.col("verdict") == schemas.UNVERIFIABLE).group_by("reason").len().sort("len", descending=True)
    yield dg.AssetCheckResult(
        passed=share <= bound,
        metadata={"unverifiable_share": share, "bound": bound,
                  "top_reasons": dg.MetadataValue.json({r: n for r, n in reasons.head(5).iter_rows()})},
        description=f"{share:.1%} of samples unverifiable (bound {bound:.0%})",
    )


def _warm_rows(warm: pl.DataFrame) -> pl.DataFrame:
    return schemas.validate(
        warm.select(
            pl.concat_str(pl.lit("warm_start"), "prompt_id", pl.lit("0"), separator="/").alias("row_id"),
            pl.lit("warm_start").alias("source_round"),
            "prompt_id",
            pl.lit(0).alias("sample_idx"),
            pl.lit("reference").alias("policy_id"),
            pl.lit("").alias("policy_hash"),
            "prompt",
            pl.col("target").alias("completion"),
            pl.lit(1.0).alias("reward"),
        ),
        "sft_rows",
    )


@dg.asset(
    **ROUND,
    kinds={"polars"},
    check_specs=[dg.AssetCheckSpec("has_new_rows", asset="training_set", blocking=True,
                                   description="stops the round when fewer than selection.min_new_rows samples were kept")],
)
def training_set(context: dg.AssetExecutionContext, experiment: ExperimentResource, prompts: pl.DataFrame,
                 samples: pl.DataFrame, verdicts: pl.DataFrame, warm_start_prompts: pl.DataFrame):
    """Kept samples of this round, plus (by config) earlier rounds' rows and the warm start."""
    experiment = experiment.of(context)
    cfg, store, key = experiment.config, experiment.store, context.partition_key
    sel = cfg.selection
    new = select_sft(samples, verdicts, sel.max_per_prompt, sel.require_rationale, sel.dedup, sel.min_chars,
                     sel.max_chars)
    rows = _warm_rows(warm_start_prompts) if sel.include_warm_start else None
    parent = parent_key(key)
    if sel.accumulate and parent is not None:
        previous = schemas.validate(pl.read_parquet(_parent_rows_path(store, parent)), "sft_rows")
        rows = accumulate(rows, previous)
    rows = accumulate(rows, new)
    kept = new.join(verdicts.select("prompt_id", "sample_idx", "rationale_ok"), on=["prompt_id", "sample_idx"]) \
              .join(prompts.select("prompt_id", "difficulty"), on="prompt_id")
    per_d = kept.group_by("difficulty").agg(n=pl.len(), bad=(pl.col("rationale_ok") == False).sum())  # noqa: E712
    meta = {"new_rows": new.height, "total_rows": rows.height}
    for d, n, bad in per_d.sort("difficulty").iter_rows():
        meta[f"kept_d{d}"] = n
        meta[f"kept_bad_rationale_share_d{d}"] = bad / n if n else 0.0
    yield dg.Output(rows, metadata=meta)
    yield dg.AssetCheckResult(passed=new.height >= sel.min_new_rows, metadata={"new_rows": new.height},
                              description=f"{new.height} new verified rows this round")


@dg.asset(
    **ROUND,
    kinds={"polars"},
    check_specs=[dg.AssetCheckSpec("has_pairs", asset="pairs", blocking=True,
                                   description="with training.objective dpo, stops a round that formed no pair")],
)
def pairs(context: dg.AssetExecutionContext, experiment: ExperimentResource, samples: pl.DataFrame,
          verdicts: pl.DataFrame):
    """(correct, incorrect) pairs of the same prompt; prompts with zero variance give none."""
    experiment = experiment.of(context)
    cfg = experiment.config
    df = correctness_pairs(samples, verdicts, cfg.training.dpo.max_pairs_per_prompt)
    per = judged(samples, verdicts).group_by("prompt_id").agg(
        ok=(pl.col("verdict") == schemas.CORRECT).any(), bad=(pl.col("verdict") == schemas.INCORRECT).any())
    mixed = per.filter(pl.col("ok") & pl.col("bad")).height
    yield dg.Output(df, metadata={"pairs": df.height, "prompts_with_pairs": df["prompt_id"].n_unique(),
                                  "zero_variance_prompts": per.height - mixed})
    needed = cfg.training.objective == "dpo"
    yield dg.AssetCheckResult(passed=df.height > 0 or not needed, metadata={"pairs": df.height},
                              description=f"{df.height} pairs" + ("" if needed else " (objective sft: not used)"))


def _parent_rows_path(store, parent: str):
    path = store.table_path("training_set", parent)
    if not path.is_file():
        raise dg.Failure(description=f"accumulating rows needs round {parent}'s training_set at {path}; "
                                     f"materialize round {parent} first")
    return path


@dg.asset(**ROUND, kinds={"pytorch"}, tags={"selftaught/resource": "gpu"}, deps=["base_model"])
def policy(context: dg.AssetExecutionContext, experiment: ExperimentResource,
           training_set: pl.DataFrame, pairs: pl.DataFrame) -> dg.MaterializeResult:
    """Fine-tune from the parent policy (continue) or the base model (restart); save with provenance."""
    experiment = experiment.of(context)
    cfg, store, key = experiment.config, experiment.store, context.partition_key
    parent = resolve_parent(context, store)
    base = store.model_dir("base")
    init = parent.artifact if cfg.training.init == "continue" else base
    adapter_init = None
    if cfg.training.method == "lora" and init != base and _adapter_on_base(parent.artifact, base):
        # Keep training the parent's adapter on the base weights, so every round's policy
        # is one adapter on one base model (what vLLM serves without merging).
        init, adapter_init = base, adapter_path(parent.artifact)
    work = store.work_dir(key)
    reference = None
    if cfg.training.objective == "dpo":
        ref = parent if cfg.training.dpo.reference == "previous" else None
        reference = {"policy_id": ref.policy_id if ref else "base",
                     "weights_hash": ref.weights_hash if ref else read_provenance(base)["weights_hash"]}
        d, t = cfg.training.dpo, cfg.training
        settings = DPOSettings(max_steps=t.max_steps, learning_rate=t.learning_rate, batch_size=t.batch_size,
                               beta=d.beta, rpo_alpha=d.rpo_alpha, max_length=t.max_length,
                               seed=t.seed + round_index(key))
        context.log.info(f"{key}: {'RPO' if d.rpo_alpha else 'DPO'} from {init.name} on {pairs.height} pairs, "
                         f"reference {reference['policy_id']}, {t.max_steps} steps")
        metrics = train_dpo(model_path(init), model_path(ref.artifact if ref else base), pairs, work, settings)
    else:
        settings = settings_from_config(cfg.training, seed_offset=round_index(key))
        context.log.info(f"{key}: {settings.method} fine-tune from "
                         f"{parent.policy_id if adapter_init else init.name} on {training_set.height} rows, "
                         f"{settings.max_steps} steps")
        metrics = train_sft(model_path(init), training_set, work, settings, adapter_init=adapter_init)
    on_base = cfg.training.method == "lora" and init == base
    data_table = "pairs" if cfg.training.objective == "dpo" else "training_set"
    data_hash = file_hash(store.table_path(data_table, key))[:16]
    prov = write_provenance(
        work, policy_id=key, parent={"policy_id": parent.policy_id, "weights_hash": parent.weights_hash,
                                     "run_id": parent.run_id},
        init=cfg.training.init, method=cfg.training.method, base=str(cfg.model.base),
        config_hash=cfg.section_hash(), data_hash=data_hash, metrics=metrics,
        adapter_base_hash=read_provenance(base)["weights_hash"] if on_base else None,
        objective=cfg.training.objective, reference=reference,
    )
    publish_dir(work, store.model_dir(key))
    return dg.MaterializeResult(metadata={
        **parent_metadata(parent), "weights_hash": prov["weights_hash"], "data_hash": data_hash,
        "config_hash": prov["config_hash"], "round_config_hash": cfg.round_hash(),
        "init": cfg.training.init, "method": cfg.training.method,
        **({"adapter_hash": prov["adapter_hash"]} if prov.get("adapter_hash") else {}),
        "artifact": dg.MetadataValue.path(str(store.model_dir(key))),
        "train_loss": metrics["train_loss"], "final_loss": metrics["final_loss"], "steps": metrics["steps"],
        "train_seconds": metrics["seconds"], "objective": cfg.training.objective,
        **({"reference_policy": reference["policy_id"], "reward_margin": metrics["reward_margin"],
            "reward_accuracy": metrics["reward_accuracy"]} if reference else {}),
    })


def _adapter_on_base(artifact, base) -> bool:
    prov = read_provenance(artifact)
    return adapter_path(artifact).is_dir() and prov.get("adapter_base_hash") == read_provenance(base)["weights_hash"]


@dg.asset(**ROUND, kinds={"pytorch"}, tags={"selftaught/resource": "gpu"}, deps=["policy"])
def evaluation(context: dg.AssetExecutionContext, experiment: ExperimentResource,
               eval_prompts: pl.DataFrame) -> pl.DataFrame:
    """Greedy exact match of this round's policy on the held-out set, per difficulty."""
    experiment = experiment.of(context)
    cfg, store, key = experiment.config, experiment.store, context.partition_key
    artifact = store.model_dir(key)
    if not is_complete(artifact):
        raise dg.Failure(description=f"no complete policy artifact for {key} at {artifact}; materialize policy first")
    df = evaluate_artifact(context, experiment, eval_prompts, key, artifact)
    acc = accuracy_by_difficulty(df)
    base_path = store.table_path("eval_results", "base")
    base_acc = accuracy_by_difficulty(pl.read_parquet(base_path)) if base_path.is_file() else {}
    front = pick_frontier(cfg.task.frontier, base_acc, cfg.task.frontier_pool() or sorted(acc))
    before = _previous_accuracy(store, key).get(front)
    meta = {f"accuracy_d{d}": a for d, a in acc.items()}
    meta.update(sampled_eval_metrics(context, experiment, eval_prompts, key, artifact))
    meta["frontier"] = front
    meta["frontier_accuracy"] = acc.get(front, 0.0)
    if before is not None:
        meta["frontier_delta"] = acc.get(front, 0.0) - before
    context.add_output_metadata(meta)
    return df


def _previous_accuracy(store, key: str) -> dict[int, float]:
    parent = parent_key(key)
    path = store.table_path("evaluation", parent) if parent else store.table_path("eval_results", "base")
    return accuracy_by_difficulty(pl.read_parquet(path)) if path.is_file() else {}


ROUND_ASSETS = [prompts, samples, verdicts, training_set, pairs, policy, evaluation]
