"""Unpartitioned assets every round uses: warm-start examples, the held-out
evaluation set, and the base model (built once, cached by its config)."""

import logging
import shutil

import dagster as dg
import polars as pl

from assets.generation import evaluate_artifact, lm_eval_metrics, sampled_eval_metrics
from assets.placement import on
from assets.recipes import repair_format_examples
from assets.resources import ExperimentResource
from filters.metrics import accuracy_by_difficulty, frontier_of
from selftaught import __version__
from selftaught.config.experiment import BASE_KEY_WHEN_SET, drop_defaults
from selftaught.store import is_complete
from synth.tiny import build_tiny_model, spec_from_config
from train.artifact import copy_model, model_path, read_provenance, write_provenance
from train.gguf import conversion_record, gguf_source, is_gguf, resolve_base
from train.sft import train_sft, warm_start_settings


@dg.asset(group_name="setup", code_version=__version__, kinds={"polars"}, **on("cpu"))
def warm_start_prompts(context: dg.AssetExecutionContext, experiment: ExperimentResource) -> pl.DataFrame:
    """Worked examples (prompt + reference solution) the base model is warm-started on."""
    experiment = experiment.of(context)
    experiment.store.check_writable()
    return experiment.task(context.log.info).warm_start()


@dg.asset(group_name="setup", code_version=__version__, kinds={"polars"}, **on("cpu"))
def eval_prompts(
    context: dg.AssetExecutionContext, experiment: ExperimentResource, warm_start_prompts: pl.DataFrame
) -> pl.DataFrame:
    """Held-out problems per difficulty, disjoint from the warm start."""
    experiment = experiment.of(context)
    task = experiment.task(context.log.info, evaluation=True)
    out = task.eval_set(set(warm_start_prompts["prompt_id"]))
    plugin = experiment.config.eval_task().plugin()
    meta = {"task": plugin.name, "task_origin": plugin.origin.describe()}
    if plugin.caps.contamination_check:  # held-out questions that are also training rows: kept out of training
        report = task.contamination()
        meta.update({k: v for k, v in report.items() if not isinstance(v, list)})
        if report["contaminated_eval_rows"]:
            meta["contaminated_eval_ids"] = dg.MetadataValue.json(report["contaminated_eval_ids"])
            logging.getLogger("selftaught.setup").warning(
                f"{report['contaminated_eval_rows']} held-out rows share their question with a training row; "
                "those training rows are kept out of pools, warm start and few-shot"
            )
    context.add_output_metadata(meta)
    return out


def _base_key(cfg) -> str:
    import hashlib
    import json

    model = drop_defaults(cfg.model.model_dump(mode="json"), BASE_KEY_WHEN_SET)
    wanted = {"model": model, "warm_start": cfg.task.warm_start, "seed": cfg.task.seed}
    task = cfg.task.plugin()
    if cfg.model.warm_start is not None and (not task.builtin or cfg.task.train is not None):
        # the warm-start rows come from user code or a dataset file: what they are counts
        wanted["task"] = {**cfg.task.model_dump(mode="json"), "name": task.hash_key()}
    if is_gguf(cfg.model.base):  # the file behind the name, not the name
        wanted["gguf_sha256"] = gguf_source(cfg.model.base).sha256
    if cfg.repair.mode != "none" and cfg.repair.warm_start_share:
        wanted["repair_format"] = [cfg.repair.mode, cfg.repair.warm_start_share, cfg.repair.prompt_template()]
    if cfg.model.warm_start is not None:  # trained here: a release that trains otherwise retrains it
        wanted["code_version"] = __version__
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]


def _build_base(context, experiment: ExperimentResource, warm: pl.DataFrame) -> dict:
    cfg, store = experiment.config, experiment.store
    work = store.work_dir("base")
    shutil.rmtree(work, ignore_errors=True)
    if cfg.model.base == "tiny":
        init = build_tiny_model(spec_from_config(cfg.model.tiny), work / "init")
    else:
        init = resolve_base(cfg.model.base, context.log.info)  # a folder, hub id, or converted GGUF
    metrics = {}
    if cfg.model.warm_start is not None:
        context.log.info(f"warm start: full fine-tune on {warm.height} worked examples")
        rows = warm.select("prompt", pl.col("target").alias("completion"))
        if cfg.repair.mode != "none" and cfg.repair.warm_start_share:
            rows = pl.concat([rows, repair_format_examples(cfg, warm, experiment.user_turn(context.log.info))])
            context.log.info(f"warm start: {rows.height - warm.height} of them also in the {cfg.repair.mode} format")
        metrics = train_sft(init, rows, work, warm_start_settings(cfg.model.warm_start))
    else:
        copy_model(init, model_path(work))
    shutil.rmtree(work / "init", ignore_errors=True)
    write_provenance(
        work,
        policy_id="base",
        base=str(cfg.model.base),
        config_hash=_base_key(cfg),
        metrics=metrics,
        **({"gguf": record} if (record := conversion_record(cfg.model.base)) else {}),
    )
    store.publish_model(work, "base", context.log.info)
    return metrics


@dg.asset(group_name="setup", code_version=__version__, kinds={"pytorch"}, **on("gpu"))
def base_model(
    context: dg.AssetExecutionContext,
    experiment: ExperimentResource,
    warm_start_prompts: pl.DataFrame,
    eval_prompts: pl.DataFrame,
) -> dg.MaterializeResult:
    """The round-1 policy: the tiny model (or `model.base`), warm-started; evaluated once."""
    experiment = experiment.of(context)
    cfg, store = experiment.config, experiment.store
    artifact = store.model_dir("base")
    cached = is_complete(artifact) and read_provenance(artifact).get("config_hash") == _base_key(cfg)
    if cached:
        context.log.info(f"base model unchanged (config hash {_base_key(cfg)}): reusing {store.where(artifact)}")
    else:
        _build_base(context, experiment, warm_start_prompts)
    prov = read_provenance(artifact)
    results = evaluate_artifact(context, experiment, eval_prompts, "base", artifact)
    path = store.write_table(results, "evaluation", "base", schema="eval_results")
    acc = accuracy_by_difficulty(results)
    return dg.MaterializeResult(
        metadata={
            "weights_hash": prov["weights_hash"],
            "config_hash": prov["config_hash"],
            "cached": cached,
            "artifact": dg.MetadataValue.path(store.where(artifact)),
            "eval_results": dg.MetadataValue.path(str(path)),  # the key of 0.3 (the file is evaluation/base)
            **{f"accuracy_d{d}": a for d, a in acc.items()},
            **sampled_eval_metrics(context, experiment, eval_prompts, "base", artifact),
            **lm_eval_metrics(context, experiment, "base", artifact),
            "frontier": (front := frontier_of(cfg.frontier_scope(), acc, measured=acc)),
            "frontier_accuracy": acc.get(front, 0.0),
        }
    )
