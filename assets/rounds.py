"""One asset per stage of a round, partitioned by round key (r001, r002, ...).

    prompts -> sampling_plan -> samples -> verdicts -> repairs -> training_set -> policy -> evaluation
                                   ^ (policy of round k-1,            \-> pairs --------^
                                      looked up at run time)
Stages a recipe does not use pass through (an empty repairs table, a uniform plan).
"""


import time

import dagster as dg
import polars as pl

from assets.generation import evaluate_artifact, sampled_eval_metrics
from assets.lineage import parent_metadata, resolve_parent
from assets.placement import on
from assets.resources import ExperimentResource
from assets.summary import markdown_table
from assets.recipes import (balance_search, budget_rates, curriculum_counts, plan, repair, sample_by_plan, verdicts_for,
                            verifier_pairs)
from filters.metrics import (accuracy_by_difficulty, judge_agreement, pick_frontier, pseudo_label_accuracy,
                             sample_metrics)
from filters.verifiers import verify
from filters.pairs import make_pairs
from filters.select import accumulate, judged, select_repairs, select_sft
from selftaught import __version__, schemas
from selftaught.rounds import parent_key, round_index
from selftaught.store import is_complete
from selftaught.files import file_hash, read_parquet
from synth.tasks import default_verifier, reference_verifier
from train.artifact import adapter_path, model_path, read_provenance, verifier_dir, write_provenance
from train.dpo import DPOSettings, train_dpo
from train.launch import launch
from train.sft import settings_from_config, train_sft

rounds = dg.DynamicPartitionsDefinition(name="rounds")
# code_version: the Dagster UI marks materializations of an older selftaught as stale.
ROUND = {"partitions_def": rounds, "group_name": "round", "code_version": __version__}


@dg.asset(**ROUND, kinds={"polars"}, **on("cpu"))
def prompts(
    context: dg.AssetExecutionContext,
    experiment: ExperimentResource,
    warm_start_prompts: pl.DataFrame,
    eval_prompts: pl.DataFrame,
) -> pl.DataFrame:
    """A fresh unlabeled pool for this round, disjoint from warm start and eval."""
    experiment = experiment.of(context)
    cfg, key = experiment.config, context.partition_key
    exclude = set(warm_start_prompts["prompt_id"]) | set(eval_prompts["prompt_id"])
    task = experiment.task(context.log.info)
    meta = {}
    if cfg.task.curriculum is not None:
        at, counts = curriculum_counts(experiment, key)
        meta["curriculum_level"] = at
        df = task.pool(round_index(key), exclude, counts)
    else:
        df = task.pool(round_index(key), exclude)
    counts = df.group_by("difficulty").len().sort("difficulty")
    context.add_output_metadata({**meta, **{f"prompts_d{d}": n for d, n in counts.iter_rows()}})
    return df


@dg.asset(**ROUND, kinds={"polars"}, **on("gpu"))  # B-STaR samples a dev slice
def sampling_plan(context: dg.AssetExecutionContext, experiment: ExperimentResource,
                  prompts: pl.DataFrame) -> pl.DataFrame:
    """Per prompt: samples to draw, temperature, reward threshold. Uniform by default;
    sampling.balance picks temperature and threshold on a dev slice (B-STaR);
    sampling.budget spends more samples where solve rates are low."""
    experiment = experiment.of(context)
    cfg, key = experiment.config, context.partition_key
    s = cfg.sampling
    temperature, threshold, meta = s.temperature, None, {}
    if s.balance is not None:
        parent = resolve_parent(context, experiment.store)
        temperature, threshold, table = balance_search(context, experiment, parent, key, prompts)
        context.log.info(f"{key}: B-STaR picks temperature {temperature:g}, threshold {threshold:g}")
        meta["balance_table"] = dg.MetadataValue.md(markdown_table(pl.DataFrame(table)))
        best = next(r for r in table if r["temperature"] == temperature and r["threshold"] == threshold)
        meta.update({f"chosen_{k}": float(v) for k, v in best.items()})
    rates = budget_rates(experiment, key) if s.budget.mode == "solve_rate" else {}
    df = plan(prompts, cfg, temperature, threshold, rates)
    per_d = df.group_by("difficulty").agg(pl.col("n").first()).sort("difficulty")
    meta.update({f"n_d{d}": int(n) for d, n in per_d.iter_rows()})
    meta.update({f"solve_rate_d{d}": float(r) for d, r in rates.items()})
    meta.update({"temperature": temperature, "total_samples": int(df["n"].sum())})
    context.add_output_metadata(meta)
    return df


@dg.asset(**ROUND, kinds={"pytorch"}, **on("gpu"))
def samples(context: dg.AssetExecutionContext, experiment: ExperimentResource, prompts: pl.DataFrame,
            sampling_plan: pl.DataFrame) -> pl.DataFrame:
    """Completions per prompt (as the plan says) from the parent round's policy (base model for round 1)."""
    experiment = experiment.of(context)
    cfg, key = experiment.config, context.partition_key
    parent = resolve_parent(context, experiment.store)
    s = cfg.sampling
    context.log.info(f"{key}: sampling {prompts.height} prompts, {int(sampling_plan['n'].sum())} samples, "
                     f"with policy {parent.policy_id}")
    started = time.monotonic()
    df = sample_by_plan(context, experiment, parent, key, prompts, sampling_plan)
    seconds = time.monotonic() - started
    context.add_output_metadata({**parent_metadata(parent), "temperature": float(sampling_plan["temperature"][0]),
                                 "n": s.n, "seed": s.seed * 1000 + round_index(key), "backend": s.backend,
                                 "generation_seconds": round(seconds, 1),
                                 "samples_per_second": round(df.height / max(seconds, 1e-9), 1)})
    return df


@dg.asset(
    **ROUND,
    **on("cpu"),  # a judge verifier generates: serve it (judge.backend openai) on a cluster
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
    parent = resolve_parent(context, experiment.store) if name == "judge" else None
    df = verdicts_for(context, experiment, parent, context.partition_key, prompts, samples)
    m = sample_metrics(judged(samples, df), prompts)
    if name == "majority":
        m.update(pseudo_label_accuracy(df, prompts))
    if name == "judge" and (prompts["reference"].str.strip_chars() != "").all():
        m.update(judge_agreement(df, verify(reference_verifier(cfg), prompts, samples)))
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
            pl.lit("warm_start").alias("origin"),
            pl.lit(None, pl.Int32).alias("repaired_sample_idx"),
        ),
        "sft_rows",
    )


@dg.asset(**ROUND, kinds={"pytorch"}, **on("gpu"))
def repairs(context: dg.AssetExecutionContext, experiment: ExperimentResource, prompts: pl.DataFrame,
            samples: pl.DataFrame, verdicts: pl.DataFrame) -> pl.DataFrame:
    """Second attempts at what failed (repair.mode): STaR rationalization or Re-ReST
    reflection, re-verified. Empty when repair.mode is none."""
    experiment = experiment.of(context)
    cfg, key = experiment.config, context.partition_key
    if cfg.repair.mode == "none":
        context.add_output_metadata({"mode": "none", "attempts": 0})
        return schemas.empty("repairs")
    parent = resolve_parent(context, experiment.store)
    df = repair(context, experiment, parent, key, prompts, samples, verdicts)
    ok = df.filter(pl.col("verdict") == schemas.CORRECT)
    context.add_output_metadata({
        "mode": cfg.repair.mode, "attempts": df.height, "verified": ok.height,
        "prompts_repaired": ok["prompt_id"].n_unique(),
        "repair_success_rate": ok.height / df.height if df.height else 0.0})
    return df


@dg.asset(
    **ROUND,
    **on("cpu"),
    kinds={"polars"},
    check_specs=[dg.AssetCheckSpec("has_new_rows", asset="training_set", blocking=True,
                                   description="stops the round when fewer than selection.min_new_rows samples were kept")],
)
def training_set(context: dg.AssetExecutionContext, experiment: ExperimentResource, prompts: pl.DataFrame,
                 samples: pl.DataFrame, verdicts: pl.DataFrame, repairs: pl.DataFrame, sampling_plan: pl.DataFrame,
                 warm_start_prompts: pl.DataFrame):
    """Kept samples (and verified repairs) of this round, plus (by config) earlier rounds'
    rows and the warm start."""
    experiment = experiment.of(context)
    cfg, store, key = experiment.config, experiment.store, context.partition_key
    sel = cfg.selection
    threshold = sampling_plan["reward_threshold"].drop_nulls()
    new = select_sft(samples, verdicts, sel.max_per_prompt, sel.require_rationale, sel.dedup, sel.min_chars,
                     sel.max_chars, min_reward=float(threshold[0]) if threshold.len() else None)
    fixed = select_repairs(repairs, sel.max_per_prompt, sel.require_rationale, sel.dedup, sel.min_chars,
                           sel.max_chars)
    new = pl.concat([new, fixed]) if fixed.height else new
    rows = _warm_rows(warm_start_prompts) if sel.include_warm_start else None
    parent = parent_key(key)
    if sel.accumulate and parent is not None:
        previous = schemas.validate(read_parquet(_parent_rows_path(store, parent)), "sft_rows")
        rows = accumulate(rows, previous)
    rows = accumulate(rows, new)
    kept = new.filter(pl.col("origin") == "sample") \
              .join(verdicts.select("prompt_id", "sample_idx", "rationale_ok"), on=["prompt_id", "sample_idx"]) \
              .join(prompts.select("prompt_id", "difficulty"), on="prompt_id")
    per_d = kept.group_by("difficulty").agg(n=pl.len(), bad=(pl.col("rationale_ok") == False).sum())  # noqa: E712
    meta = {"new_rows": new.height, "total_rows": rows.height, "repair_rows": fixed.height}
    for d, n, bad in per_d.sort("difficulty").iter_rows():
        meta[f"kept_d{d}"] = n
        meta[f"kept_bad_rationale_share_d{d}"] = bad / n if n else 0.0
    yield dg.Output(rows, metadata=meta)
    sft = cfg.training.objective == "sft"
    yield dg.AssetCheckResult(passed=new.height >= sel.min_new_rows or not sft, metadata={"new_rows": new.height},
                              description=f"{new.height} new verified rows this round"
                                          + ("" if sft else " (objective dpo: not used)"))


@dg.asset(
    **ROUND,
    **on("cpu"),
    kinds={"polars"},
    check_specs=[dg.AssetCheckSpec("has_pairs", asset="pairs", blocking=True,
                                   description="with training.objective dpo, stops a round that formed no pair")],
)
def pairs(context: dg.AssetExecutionContext, experiment: ExperimentResource, prompts: pl.DataFrame,
          samples: pl.DataFrame, verdicts: pl.DataFrame):
    """Preference pairs (training.dpo.pairs): (correct, incorrect) of a prompt, zero-variance
    prompts dropped; best vs worst reward, ties dropped; or reference vs own sample (SPIN)."""
    experiment = experiment.of(context)
    cfg = experiment.config
    d = cfg.training.dpo
    needed = cfg.training.objective == "dpo"
    source = d.pairs if needed else "correct_incorrect"
    try:
        df = make_pairs(source, samples, verdicts, prompts, d.max_pairs_per_prompt)
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from None
    per = judged(samples, verdicts).group_by("prompt_id").agg(
        ok=(pl.col("verdict") == schemas.CORRECT).any(), bad=(pl.col("verdict") == schemas.INCORRECT).any())
    mixed = per.filter(pl.col("ok") & pl.col("bad")).height
    yield dg.Output(df, metadata={"pairs": df.height, "prompts_with_pairs": df["prompt_id"].n_unique(),
                                  "zero_variance_prompts": per.height - mixed, "source": source})
    yield dg.AssetCheckResult(passed=df.height > 0 or not needed, metadata={"pairs": df.height},
                              description=f"{df.height} pairs" + ("" if needed else " (objective sft: not used)"))


def _parent_rows_path(store, parent: str):
    path = store.table_path("training_set", parent)
    if not path.is_file():
        raise dg.Failure(description=f"accumulating rows needs round {parent}'s training_set at {store.where(path)}; "
                                     f"materialize round {parent} first")
    return path


@dg.asset(**ROUND, kinds={"pytorch"}, **on("gpu"), deps=["base_model"])
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
        lora = settings_from_config(t).lora
        settings = DPOSettings(max_steps=t.steps_for(round_index(key)), learning_rate=t.learning_rate,
                               batch_size=t.batch_size, beta=d.beta, rpo_alpha=d.rpo_alpha, max_length=t.max_length,
                               seed=t.seed + round_index(key), method=t.method, lora=lora, bf16=t.bf16)
        context.log.info(f"{key}: {'RPO' if d.rpo_alpha else 'DPO'} from {init.name} on {pairs.height} pairs, "
                         f"reference {reference['policy_id']}, {settings.max_steps} steps")
        metrics = _train(context, cfg, "dpo", model_path(init), pairs, work, settings, adapter_init,
                         reference=model_path(ref.artifact if ref else base))
    else:
        settings = settings_from_config(cfg.training, seed_offset=round_index(key),
                                        max_steps=cfg.training.steps_for(round_index(key)))
        context.log.info(f"{key}: {settings.method} fine-tune from "
                         f"{parent.policy_id if adapter_init else init.name} on {training_set.height} rows, "
                         f"{settings.max_steps} steps")
        metrics = _train(context, cfg, "sft", model_path(init), training_set, work, settings, adapter_init)
    verifier = _train_verifier(context, cfg, store, key, base, work) if cfg.training.verifier else None
    on_base = cfg.training.method == "lora" and init == base
    data_table = "pairs" if cfg.training.objective == "dpo" else "training_set"
    data_hash = file_hash(store.table_path(data_table, key))[:16]
    prov = write_provenance(
        work, policy_id=key, parent={"policy_id": parent.policy_id, "weights_hash": parent.weights_hash,
                                     "run_id": parent.run_id},
        init=cfg.training.init, method=cfg.training.method, base=str(cfg.model.base),
        config_hash=cfg.section_hash(), data_hash=data_hash, metrics=metrics,
        adapter_base_hash=read_provenance(base)["weights_hash"] if on_base else None,
        objective=cfg.training.objective, reference=reference, verifier=verifier,
    )
    artifact = store.publish_model(work, key, context.log.info)
    return dg.MaterializeResult(metadata={
        **parent_metadata(parent), "weights_hash": prov["weights_hash"], "data_hash": data_hash,
        "config_hash": prov["config_hash"], "round_config_hash": cfg.round_hash(),
        "init": cfg.training.init, "method": cfg.training.method,
        **({"adapter_hash": prov["adapter_hash"]} if prov.get("adapter_hash") else {}),
        "artifact": dg.MetadataValue.path(store.where(artifact)),
        "train_loss": metrics["train_loss"], "final_loss": metrics["final_loss"], "steps": metrics["steps"],
        "train_seconds": metrics["seconds"], "objective": cfg.training.objective,
        **({"reference_policy": reference["policy_id"], "reward_margin": metrics["reward_margin"],
            "reward_accuracy": metrics["reward_accuracy"]} if reference else {}),
        **({"verifier_pairs": verifier["pairs"], "verifier_reward_accuracy": verifier["reward_accuracy"]}
           if verifier else {}),
    })


def _train(context, cfg, objective: str, init, rows: pl.DataFrame, work, settings, adapter_init, reference=None):
    """In this process, or under `accelerate launch` (training.launcher)."""
    launcher = cfg.training.launcher
    if launcher.launched():
        return launch(objective, init, rows, work, settings, processes=launcher.processes,
                      config_file=launcher.accelerate_config, extra=launcher.extra_args, reference=reference,
                      adapter_init=adapter_init, log=context.log.info)
    if objective == "dpo":
        return train_dpo(init, reference, rows, work, settings, adapter_init=adapter_init)
    return train_sft(init, rows, work, settings, adapter_init=adapter_init)


def _train_verifier(context, cfg, store, key: str, base, work) -> dict:
    """V-STaR: DPO from the base model on (correct, incorrect) pairs of all rounds so far;
    the base is also the reference, so the score is the verifier's implicit reward."""
    v = cfg.training.verifier
    pairs = verifier_pairs(store, key, v.max_pairs_per_prompt)
    if pairs.height == 0:
        raise dg.Failure(description=f"{key}: V-STaR verifier has no (correct, incorrect) pair in any round yet")
    context.log.info(f"{key}: V-STaR verifier: DPO on {pairs.height} pairs of rounds 1..{round_index(key)}")
    settings = DPOSettings(max_steps=v.max_steps, learning_rate=v.learning_rate, batch_size=v.batch_size,
                           beta=v.beta, rpo_alpha=0.0, max_length=cfg.training.max_length,
                           seed=cfg.training.seed + round_index(key), bf16=cfg.training.bf16)
    m = train_dpo(model_path(base), model_path(base), pairs, verifier_dir(work), settings)
    return {"pairs": pairs.height, "reference": "base", "steps": m["steps"],
            "reward_accuracy": m["reward_accuracy"], "reward_margin": m["reward_margin"]}


def _adapter_on_base(artifact, base) -> bool:
    prov = read_provenance(artifact)
    return adapter_path(artifact).is_dir() and prov.get("adapter_base_hash") == read_provenance(base)["weights_hash"]


@dg.asset(**ROUND, kinds={"pytorch"}, **on("gpu"), deps=["policy"])
def evaluation(context: dg.AssetExecutionContext, experiment: ExperimentResource,
               eval_prompts: pl.DataFrame) -> pl.DataFrame:
    """Greedy exact match of this round's policy on the held-out set, per difficulty."""
    experiment = experiment.of(context)
    cfg, store, key = experiment.config, experiment.store, context.partition_key
    artifact = store.model_dir(key)
    if not is_complete(artifact):
        raise dg.Failure(description=f"no complete policy artifact for {key} at {store.where(artifact)}; "
                                     "materialize policy first")
    df = evaluate_artifact(context, experiment, eval_prompts, key, artifact)
    acc = accuracy_by_difficulty(df)
    base_path = store.table_path("eval_results", "base")
    base_acc = accuracy_by_difficulty(read_parquet(base_path)) if base_path.is_file() else {}
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
    return accuracy_by_difficulty(read_parquet(path)) if path.is_file() else {}


ROUND_ASSETS = [prompts, sampling_plan, samples, verdicts, repairs, training_set, pairs, policy, evaluation]
