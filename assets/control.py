"""The control beside each round (evaluation.control), built only when the experiment declares one:

    base_model, warm_start_prompts -> control_policy -> control_evaluation
    evaluation -> control_policy (order only), evaluation -> control_evaluation (the gain)
    (control_policy of round k continues round k-1's control_policy, as policy continues policy)

warm_start: the round's training plan (steps, seeds, learning rate, method, init) on the
warm-start rows alone, so the recipe's accuracy minus the control's is what its self-generated
rows add. The control's assets carry their own hash (ExperimentConfig.control_hash), not the
round's: turning the control on adds it to finished rounds without redoing them.
"""

import dagster as dg
import polars as pl

from assets.context import RoundContext
from assets.generation import evaluate_artifact
from assets.parent import parent_metadata, resolve_parent
from assets.placement import on
from assets.resources import ExperimentResource
from assets.rounds import ROUND, training_cost
from assets.stage_costs import measured
from filters.metrics import accuracy_by_difficulty, evaluated_accuracy, frontier_of
from filters.select import warm_start_rows
from selftaught.files import file_hash
from selftaught.round_keys import control_key
from selftaught.store import is_complete
from train.artifact import read_provenance, write_provenance
from train.common import training_precision
from train.plan import Policy, plan_control, run_plan


# After the round's evaluation: a run of the whole round (the UI's) never trains the control
# beside the policy. control_todo does not count that edge: a redone round leaves the control's model current.
@dg.asset(**ROUND, kinds={"pytorch"}, **on("gpu"), deps=["base_model", "evaluation"])
@measured
def control_policy(
    context: dg.AssetExecutionContext, experiment: ExperimentResource, warm_start_prompts: pl.DataFrame
) -> dg.MaterializeResult:
    """The round's fine-tune on the warm-start rows alone, from the control of the round before
    (the base model in round 1); saved as models/control-<round> with provenance."""
    rc = RoundContext.of(context, experiment)
    cfg, store, key = rc.config, rc.store, rc.key
    parent = resolve_parent(context, store, control=True)
    base, name = store.model_dir("base"), control_key(key)
    work = store.work_dir(name)
    start = Policy(parent.policy_id, parent.artifact, parent.weights_hash)
    plan = plan_control(cfg.training, rc.index, start, base)
    rows = warm_start_rows(warm_start_prompts)
    rc.log(f"control ({cfg.evaluation.control}): {plan.describe(start, rows.height)}")
    store.write_table(rows, "control_rows", key, schema="sft_rows")  # what it trained on: lineage, data_hash
    metrics = run_plan(plan, rows, work, cfg.training.launcher, context.log.info)
    precision = training_precision(plan.settings.bf16)
    prov = write_provenance(
        work,
        policy_id=name,
        parent={"policy_id": parent.policy_id, "weights_hash": parent.weights_hash, "run_id": parent.run_id},
        init=cfg.training.init,
        method=cfg.training.method,
        base=str(cfg.model.base),
        config_hash=cfg.section_hash(),
        control=cfg.evaluation.control,
        control_hash=cfg.control_hash(),
        data_hash=file_hash(store.table_path("control_rows", key))[:16],
        metrics=metrics,
        adapter_base_hash=read_provenance(base)["weights_hash"] if plan.adapter_on_base else None,
        objective=plan.objective,
        **({"phase": rc.phase} if rc.phase else {}),
        **precision,
    )
    artifact = store.publish_model(work, name, context.log.info)
    return dg.MaterializeResult(
        metadata={
            **parent_metadata(parent),
            "control": cfg.evaluation.control,
            "control_hash": cfg.control_hash(),
            "weights_hash": prov["weights_hash"],
            "data_hash": prov["data_hash"],
            "rows": rows.height,
            "objective": plan.objective,
            "artifact": dg.MetadataValue.path(store.where(artifact)),
            "train_loss": metrics["train_loss"],
            "final_loss": metrics["final_loss"],
            "steps": metrics["steps"],
            "train_seconds": metrics["seconds"],
            **({"trained_tokens": metrics["trained_tokens"]} if metrics.get("trained_tokens") else {}),
            **precision,
            **training_cost(cfg, base, metrics, precision),
        }
    )


@dg.asset(**ROUND, kinds={"pytorch"}, **on("gpu"), deps=["control_policy", "evaluation"])
@measured
def control_evaluation(
    context: dg.AssetExecutionContext, experiment: ExperimentResource, eval_prompts: pl.DataFrame
) -> pl.DataFrame:
    """The control's greedy held-out accuracy per difficulty, as evaluation scores the round's
    policy; its metadata holds both and the recipe's gain over the control per difficulty."""
    rc = RoundContext.of(context, experiment)
    store, key = rc.store, rc.key
    artifact = store.model_dir(control_key(key))
    if not is_complete(artifact):
        raise dg.Failure(
            description=f"no complete control model for {key} at {store.where(artifact)}; "
            "materialize control_policy first"
        )
    df = evaluate_artifact(context, rc.experiment, eval_prompts, control_key(key), artifact)
    control, recipe, base = (
        accuracy_by_difficulty(df),
        evaluated_accuracy(store, key),
        evaluated_accuracy(store, "base"),
    )
    meta: dict = {"control_hash": rc.config.control_hash(), **control_gain(control, recipe, base)}
    front = frontier_of(rc.config.frontier_scope(), base, measured=control)
    if front in recipe and front in control:
        meta.update({"frontier": front, "frontier_vs_control": recipe[front] - control[front]})
    context.add_output_metadata(meta)
    return df


def control_gain(control: dict[int, float], recipe: dict[int, float], base: dict[int, float]) -> dict[str, float]:
    """Per difficulty: the control's accuracy, the recipe's, the base model's, and recipe minus control."""
    out: dict[str, float] = {}
    for d, c in sorted(control.items()):
        out[f"control_accuracy_d{d}"] = c
        if d in recipe:
            out[f"accuracy_d{d}"] = recipe[d]
            out[f"vs_control_d{d}"] = recipe[d] - c
        if d in base:
            out[f"base_accuracy_d{d}"] = base[d]
    return out


CONTROL_ASSETS = [control_policy, control_evaluation]
