"""One asset per stage of a round, partitioned by round key (r001, r002, ...).

    prompts -> sampling_plan -> samples -> verdicts -> repairs -> training_set --+
                                                  verdicts -> pairs ----------------+-> policy
    policy -> evaluation -> round_diff
    (samples and policy look up the policy of round k-1 at run time: it writes this round's samples
    and is the one policy continues from)

Stages a recipe does not use pass through (an empty repairs table, a uniform plan).
Each body reads its inputs, calls one function of synth/, filters/ or train/ (through
assets.recipes where earlier rounds' tables are read), and attaches metadata.
"""

import time
from typing import Any

import dagster as dg
import polars as pl

from assets.context import RoundContext
from assets.generation import evaluate_artifact, lm_eval_metrics, sampled_eval_metrics
from assets.parent import parent_metadata
from assets.placement import on
from assets.recipes import (
    balance_search,
    budget_rates,
    curriculum_counts,
    prompts_by_band,
    rollout_prompts,
    rollout_reward,
    sample_by_plan,
    second_attempts,
    verdicts_for,
    verifier_pairs,
)
from assets.resources import ExperimentResource
from assets.stage_costs import measured
from filters.audit import audit
from filters.diff import diff_rounds
from filters.ledger import GENERATION_RULE, generation_flops, training_flops, training_rule
from filters.metrics import (
    accuracy_by_difficulty,
    evaluated_accuracy,
    frontier_of,
    judge_agreement,
    pseudo_label_accuracy,
    sample_metrics,
    zero_std_share,
)
from filters.pairs import make_pairs
from filters.select import judged, training_rows
from filters.summary import markdown_table, round_metrics
from filters.verifiers import verify
from selftaught import __version__, schemas
from selftaught.files import file_hash, read_parquet
from selftaught.hardware import resolve_dtype
from selftaught.seeds import sampling_round_seed
from selftaught.store import is_complete, model_path
from synth.backends import count_tokens
from synth.sampling import plan
from synth.tasks import reference_verifier
from train.artifact import parameter_count, read_provenance, write_provenance
from train.common import training_precision
from train.plan import plan_round, run_plan, train_verifier
from train.tracking import log_round

rounds = dg.DynamicPartitionsDefinition(name="rounds")
# code_version: the Dagster UI marks materializations of an older selftaught as stale.
ROUND: dict[str, Any] = {"partitions_def": rounds, "group_name": "round", "code_version": __version__}


@dg.asset(**ROUND, kinds={"polars"}, **on("cpu"))
@measured
def prompts(
    context: dg.AssetExecutionContext,
    experiment: ExperimentResource,
    warm_start_prompts: pl.DataFrame,
    eval_prompts: pl.DataFrame,
) -> pl.DataFrame:
    """A fresh unlabeled pool for this round, disjoint from warm start and eval; with
    sampling.prompt_band, earlier rounds' prompts whose measured solve rate is in the band come
    first (filters.prompt_band)."""
    rc = RoundContext.of(context, experiment)
    exclude = set(warm_start_prompts["prompt_id"]) | set(eval_prompts["prompt_id"])
    task = rc.experiment.task(context.log.info)
    meta = {}
    if rc.config.task.curriculum is not None:
        meta["curriculum_level"], counts = curriculum_counts(rc)
        df = task.pool(rc.index, exclude, counts)
    else:
        df = task.pool(rc.index, exclude)
    if rc.config.sampling.prompt_band is not None:
        choice = prompts_by_band(rc, df)
        df = choice.prompts
        meta.update({f"band_{k}": v for k, v in choice.numbers.items()})
        band = rc.config.sampling.prompt_band
        meta["band_measure"] = band.measure
        rc.log(
            f"prompt band ({band.measure}): {int(choice.numbers['reused'])} measured prompts in the band "
            f"(of {int(choice.numbers['measured'])}), {int(choice.numbers['fresh'])} fresh"
        )
    counts = df.group_by("difficulty").len().sort("difficulty")
    context.add_output_metadata({**meta, **{f"prompts_d{d}": n for d, n in counts.iter_rows()}})
    return df


@dg.asset(**ROUND, kinds={"polars"}, **on("gpu"))  # B-STaR samples a dev slice
@measured
def sampling_plan(
    context: dg.AssetExecutionContext, experiment: ExperimentResource, prompts: pl.DataFrame
) -> pl.DataFrame:
    """Per prompt: samples to draw, temperature, reward threshold. Uniform by default;
    sampling.balance picks temperature and threshold on a dev slice (B-STaR);
    sampling.budget spends more samples where solve rates are low."""
    rc = RoundContext.of(context, experiment)
    s = rc.config.sampling
    temperature, threshold, meta = s.temperature, None, {}
    if s.balance is not None:
        choice = balance_search(rc, prompts)
        temperature, threshold = choice.temperature, choice.threshold
        rc.log(f"B-STaR picks temperature {temperature:g}, threshold {threshold:g}")
        meta["balance_table"] = dg.MetadataValue.md(markdown_table(pl.DataFrame(choice.table)))
        meta.update({f"chosen_{k}": float(v) for k, v in choice.chosen().items()})
    rates = budget_rates(rc) if s.budget.mode == "solve_rate" else {}
    df = plan(prompts, s, temperature, threshold, rates)
    per_d = df.group_by("difficulty").agg(pl.col("n").first()).sort("difficulty")
    meta.update({f"n_d{d}": int(n) for d, n in per_d.iter_rows()})
    meta.update({f"solve_rate_d{d}": float(r) for d, r in rates.items()})
    meta.update({"temperature": temperature, "total_samples": int(df["n"].sum())})
    context.add_output_metadata(meta)
    return df


@dg.asset(**ROUND, kinds={"pytorch"}, **on("gpu"))
@measured
def samples(
    context: dg.AssetExecutionContext,
    experiment: ExperimentResource,
    prompts: pl.DataFrame,
    sampling_plan: pl.DataFrame,
) -> pl.DataFrame:
    """Completions per prompt (as the plan says) from the parent round's policy (base model for round 1)."""
    rc = RoundContext.of(context, experiment)
    s, objective = rc.config.sampling, rc.config.training.objective
    if rc.config.training.objective_caps().online:
        context.add_output_metadata({"objective": objective, "samples": 0})
        rc.log(f"objective {objective}: the policy step draws this round's rollouts (table rollouts)")
        return schemas.empty("samples")
    rc.log(
        f"sampling {prompts.height} prompts, {int(sampling_plan['n'].sum())} samples, with policy {rc.parent.policy_id}"
    )
    started = time.monotonic()
    df = sample_by_plan(rc, prompts, sampling_plan)
    seconds = time.monotonic() - started
    context.add_output_metadata(
        {
            **parent_metadata(rc.parent),
            "temperature": float(sampling_plan["temperature"][0]),
            "n": s.n,
            "seed": sampling_round_seed(s.seed, rc.index),
            "backend": s.backend,
            "generation_seconds": round(seconds, 1),
            "samples_per_second": round(df.height / max(seconds, 1e-9), 1),
            "generated_tokens": (generated := count_tokens(model_path(rc.parent.artifact), df["completion"])),
            **generation_cost(rc, prompts, df, generated),
        }
    )
    return df


def generation_cost(rc: RoundContext, prompts: pl.DataFrame, samples: pl.DataFrame, generated: int) -> dict:
    """The samples stage's FLOPs (filters/ledger.py's rule) and the dtype they ran in; nothing
    for a server's model (its size is not ours to read)."""
    s = rc.config.sampling
    if s.backend == "openai" or samples.height == 0:
        return {}
    model = model_path(rc.parent.artifact)
    params = parameter_count(model)
    prompt_tokens = count_tokens(
        model, prompts.filter(pl.col("prompt_id").is_in(samples["prompt_id"].unique()))["prompt"]
    )
    dtype = resolve_dtype(s.dtype if s.backend == "hf" else s.vllm.dtype)
    return {
        "parameters": params,
        "prompt_tokens": prompt_tokens,
        "flops": generation_flops(params, generated, prompt_tokens),
        "flops_rule": GENERATION_RULE,
        "flops_dtype": dtype if dtype in ("float32", "bfloat16") else "bfloat16",
    }


@dg.asset(
    **ROUND,
    **on("cpu"),  # a judge verifier generates: serve it (judge.backend openai) on a cluster
    kinds={"python"},
    check_specs=[
        dg.AssetCheckSpec(
            "unverifiable_share",
            asset="verdicts",
            blocking=True,
            description="stops the round when too many samples could not be verified",
        ),
        dg.AssetCheckSpec(
            "verdict_audit",
            asset="verdicts",
            blocking=True,
            description="a second, independent check of the correct samples: warns on any "
            "disagreement, stops the round above "
            "verification.max_audit_disagreement",
        ),
    ],
)
@measured
def verdicts(
    context: dg.AssetExecutionContext, experiment: ExperimentResource, prompts: pl.DataFrame, samples: pl.DataFrame
):
    """correct / incorrect / unverifiable per sample, with the extracted answer and a reason."""
    rc = RoundContext.of(context, experiment)
    cfg, objective = rc.config, rc.config.training.objective
    if cfg.training.objective_caps().online:  # rollouts are verified as the reward, in the policy step
        yield dg.Output(schemas.empty("verdicts"), metadata={"objective": objective})
        yield dg.AssetCheckResult(
            check_name="unverifiable_share",
            passed=True,
            description=f"objective {objective}: the reward bounds unverifiable rollouts",
        )
        yield dg.AssetCheckResult(
            check_name="verdict_audit", passed=True, description=f"objective {objective}: no samples"
        )
        return
    caps = rc.verifier.plugin.caps
    df = verdicts_for(rc, prompts, samples)
    m = sample_metrics(judged(samples.drop("prompt", "completion"), df), prompts)  # the texts: not read, not copied
    if caps.pseudo_labels:
        m.update(pseudo_label_accuracy(df, prompts))
    if caps.generates and (prompts["reference"].str.strip_chars() != "").all():
        m.update(judge_agreement(df, verify(reference_verifier(cfg), prompts, samples)))
    checked = audit(rc.verifier, prompts, samples, df, cfg.verification.audit_rows)
    yield dg.Output(
        df, metadata={**{k: float(v) for k, v in m.items()}, **checked.numbers, **verifier_metadata(rc.verifier)}
    )
    yield _unverifiable_check(df, m["unverifiable_share"], cfg.verification.max_unverifiable_share)
    yield _audit_check(checked, cfg.verification.max_audit_disagreement)


def verifier_metadata(verifier) -> dict:
    """Which checker judged: name, origin (built-in, package==version, or the file), sha256 of
    its source for user code (also in every verdict's `verifier` column, and the round hash)."""
    who = verifier.plugin.identity()
    return {
        "verifier": f"{verifier.name}@{verifier.version}",
        "verifier_origin": who["origin"],
        **({"verifier_spec": who["spec"], "verifier_sha256": who["sha256"]} if who["sha256"] else {}),
    }


def _audit_check(checked, bound: float | None) -> dg.AssetCheckResult:
    """Passes with no disagreement (or no independent check for this verifier); a warning
    otherwise; an error, which stops the round, above `bound`."""
    share = checked.numbers.get("audit_disagreement_share", 0.0)
    blocking = bound is not None and share > bound
    what = checked.second_opinion or "no independent check for this verifier"
    return dg.AssetCheckResult(
        check_name="verdict_audit",
        passed=share == 0.0,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        metadata={
            **checked.numbers,
            "second_opinion": what,
            "bound": bound if bound is not None else "none",
            "disagreeing_rows": dg.MetadataValue.md(checked.markdown()),
        },
        description=f"{what}: disagrees on {share:.1%} of the correct samples"
        + (f" (bound {bound:.0%})" if bound is not None else ""),
    )


def _unverifiable_check(df: pl.DataFrame, share: float, bound: float) -> dg.AssetCheckResult:
    reasons = df.filter(pl.col("verdict") == schemas.UNVERIFIABLE).group_by("reason").len().sort("len", descending=True)
    return dg.AssetCheckResult(
        check_name="unverifiable_share",
        passed=share <= bound,
        metadata={
            "unverifiable_share": share,
            "bound": bound,
            "top_reasons": dg.MetadataValue.json({r: n for r, n in reasons.head(5).iter_rows()}),
        },
        description=f"{share:.1%} of samples unverifiable (bound {bound:.0%})",
    )


@dg.asset(**ROUND, kinds={"pytorch"}, **on("gpu"))
@measured
def repairs(
    context: dg.AssetExecutionContext,
    experiment: ExperimentResource,
    prompts: pl.DataFrame,
    samples: pl.DataFrame,
    verdicts: pl.DataFrame,
) -> pl.DataFrame:
    """Second attempts at what failed (repair.mode): STaR rationalization or Re-ReST
    reflection, re-verified. Empty when repair.mode is none."""
    rc = RoundContext.of(context, experiment)
    mode = rc.config.repair.mode
    if mode == "none":
        context.add_output_metadata({"mode": "none", "attempts": 0})
        return schemas.empty("repairs")
    df = second_attempts(rc, prompts, samples, verdicts)
    ok = df.filter(pl.col("verdict") == schemas.CORRECT)
    context.add_output_metadata(
        {
            "mode": mode,
            "attempts": df.height,
            "verified": ok.height,
            "prompts_repaired": ok["prompt_id"].n_unique(),
            "repair_success_rate": ok.height / df.height if df.height else 0.0,
        }
    )
    return df


@dg.asset(
    **ROUND,
    **on("cpu"),
    kinds={"polars"},
    check_specs=[
        dg.AssetCheckSpec(
            "has_new_rows",
            asset="training_set",
            blocking=True,
            description="stops the round when fewer than selection.min_new_rows samples were kept",
        )
    ],
)
@measured
def training_set(
    context: dg.AssetExecutionContext,
    experiment: ExperimentResource,
    prompts: pl.DataFrame,
    samples: pl.DataFrame,
    verdicts: pl.DataFrame,
    repairs: pl.DataFrame,
    sampling_plan: pl.DataFrame,
    warm_start_prompts: pl.DataFrame,
):
    """Kept samples (and verified repairs) of this round, plus (by config) earlier rounds'
    rows and the warm start."""
    rc = RoundContext.of(context, experiment)
    sel, objective = rc.config.selection, rc.config.training.objective
    if rc.config.training.objective_caps().online:  # trains on its rollouts (the policy step draws them)
        yield dg.Output(schemas.empty("sft_rows"), metadata={"objective": objective, "new_rows": 0})
        yield dg.AssetCheckResult(passed=True, description=f"objective {objective}: trains on its rollouts")
        return
    threshold = sampling_plan["reward_threshold"].drop_nulls()
    earlier = rc.parent_key is not None and sel.accumulate
    got = training_rows(
        samples,
        verdicts,
        repairs,
        sel,
        min_reward=float(threshold[0]) if threshold.len() else None,
        warm_start=warm_start_prompts,
        earlier=schemas.validate(read_parquet(_parent_rows_path(rc)), "sft_rows") if earlier else None,
    )
    new = got.new
    yield dg.Output(
        got.rows,
        metadata={
            "new_rows": new.height,
            "total_rows": got.rows.height,
            "repair_rows": got.repairs,
            **_kept_per_difficulty(new, verdicts, prompts),
        },
    )
    used = rc.config.training.objective_caps().trains_on == "training_set"
    yield dg.AssetCheckResult(
        passed=new.height >= sel.min_new_rows or not used,
        metadata={"new_rows": new.height},
        description=f"{new.height} new verified rows this round"
        + ("" if used else f" (objective {objective}: not used)"),
    )


def _kept_per_difficulty(new: pl.DataFrame, verdicts: pl.DataFrame, prompts: pl.DataFrame) -> dict:
    kept = (
        new.filter(pl.col("origin") == "sample")
        .join(verdicts.select("prompt_id", "sample_idx", "rationale_ok"), on=["prompt_id", "sample_idx"])
        .join(prompts.select("prompt_id", "difficulty"), on="prompt_id")
    )
    per_d = kept.group_by("difficulty").agg(n=pl.len(), bad=(pl.col("rationale_ok") == False).sum())  # noqa: E712
    meta = {}
    for d, n, bad in per_d.sort("difficulty").iter_rows():
        meta[f"kept_d{d}"] = n
        meta[f"kept_bad_rationale_share_d{d}"] = bad / n if n else 0.0
    return meta


def _parent_rows_path(rc: RoundContext):
    parent, store = rc.parent_key, rc.store
    path = store.table_path("training_set", parent)
    if not path.is_file():
        raise dg.Failure(
            description=f"accumulating rows needs round {parent}'s training_set at {store.where(path)}; "
            f"materialize round {parent} first"
        )
    return path


@dg.asset(
    **ROUND,
    **on("cpu"),
    kinds={"polars"},
    check_specs=[
        dg.AssetCheckSpec(
            "has_pairs",
            asset="pairs",
            blocking=True,
            description="with training.objective dpo, stops a round that formed no pair",
        )
    ],
)
@measured
def pairs(
    context: dg.AssetExecutionContext,
    experiment: ExperimentResource,
    prompts: pl.DataFrame,
    samples: pl.DataFrame,
    verdicts: pl.DataFrame,
):
    """Preference pairs (training.dpo.pairs): (correct, incorrect) of a prompt, zero-variance
    prompts dropped; best vs worst reward, ties dropped; or reference vs own sample (SPIN)."""
    rc = RoundContext.of(context, experiment)
    d, objective = rc.config.training.dpo, rc.config.training.objective
    needed = rc.config.training.objective_caps().trains_on == "pairs"
    source = d.pairs if needed else "correct_incorrect"
    try:
        df = make_pairs(source, samples, verdicts, prompts, d.max_pairs_per_prompt)
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from None
    per = (
        judged(samples, verdicts)
        .group_by("prompt_id")
        .agg(ok=(pl.col("verdict") == schemas.CORRECT).any(), bad=(pl.col("verdict") == schemas.INCORRECT).any())
    )
    mixed = per.filter(pl.col("ok") & pl.col("bad")).height
    yield dg.Output(
        df,
        metadata={
            "pairs": df.height,
            "prompts_with_pairs": df["prompt_id"].n_unique(),
            "zero_variance_prompts": per.height - mixed,
            "source": source,
        },
    )
    yield dg.AssetCheckResult(
        passed=df.height > 0 or not needed,
        metadata={"pairs": df.height},
        description=f"{df.height} pairs" + ("" if needed else f" (objective {objective}: not used)"),
    )


@dg.asset(**ROUND, kinds={"pytorch"}, **on("gpu"), deps=["base_model"])
@measured
def policy(
    context: dg.AssetExecutionContext,
    experiment: ExperimentResource,
    prompts: pl.DataFrame,
    training_set: pl.DataFrame,
    pairs: pl.DataFrame,
) -> dg.MaterializeResult:
    """Fine-tune from the parent policy (continue) or the base model (restart): on the kept rows
    (sft), the pairs (dpo), or online on this round's prompts (grpo); save with provenance."""
    rc = RoundContext.of(context, experiment)
    cfg, store, parent = rc.config, rc.store, rc.parent
    base, work = store.model_dir("base"), store.work_dir(rc.key)
    plan = plan_round(cfg.training, rc.index, rc.parent_policy, base)
    caps = cfg.training.objective_caps()
    rows = (
        {"pairs": pairs, "training_set": training_set}.get(caps.trains_on)
        if not caps.online
        else rollout_prompts(cfg, prompts)
    )
    rc.log(plan.describe(rc.parent_policy, rows.height))
    reward = rollout_reward(rc, plan.settings.seed) if caps.online else None
    try:
        metrics = run_plan(plan, rows, work, cfg.training.launcher, context.log.info, reward, rc.tracking)
    finally:
        if reward is not None:
            reward.close()
    if reward is not None:
        rollouts = reward.table()
        store.write_table(rollouts, "rollouts", rc.key)
        metrics.update(_rollout_metrics(rollouts, prompts))
        metrics.update({f"rollout_{k}": v for k, v in verifier_metadata(reward.verifier).items()})
    verifier = _train_verifier(rc, base, work) if cfg.training.verifier else None
    data_hash = file_hash(store.table_path(plan.data_table, rc.key))[:16]
    precision = training_precision(plan.settings.bf16)
    compute = training_cost(cfg, base, metrics, precision)
    reference = (
        {"policy_id": plan.reference.policy_id, "weights_hash": plan.reference.weights_hash} if plan.reference else None
    )
    prov = write_provenance(
        work,
        policy_id=rc.key,
        parent={"policy_id": parent.policy_id, "weights_hash": parent.weights_hash, "run_id": parent.run_id},
        init=cfg.training.init,
        method=cfg.training.method,
        base=str(cfg.model.base),
        config_hash=cfg.section_hash(),
        data_hash=data_hash,
        metrics=metrics,
        adapter_base_hash=read_provenance(base)["weights_hash"] if plan.adapter_on_base else None,
        objective=cfg.training.objective,
        reference=reference,
        verifier=verifier,
        **({"phase": rc.phase} if rc.phase else {}),
        **precision,
    )
    artifact = store.publish_model(work, rc.key, context.log.info)
    meta = _policy_metadata(rc, prov, artifact, metrics, reference, verifier)
    return dg.MaterializeResult(metadata={**meta, **precision, **compute})


def training_cost(cfg, base, metrics: dict, precision: dict) -> dict:
    """The policy stage's FLOPs (filters/ledger.py's rules: training, plus an online objective's
    generation) and the dtype its matmuls ran in."""
    trained = metrics.get("trained_tokens") or 0
    if not trained:
        return {}
    params = parameter_count(model_path(base))
    lora = cfg.training.method == "lora"
    generated = metrics.get("generated_tokens") or 0
    rule = training_rule(lora) + (f"; {GENERATION_RULE.split(' + ')[0]}" if generated else "")
    return {
        "parameters": params,
        "flops": training_flops(params, trained, lora) + generation_flops(params, generated),
        "flops_rule": rule,
        "flops_dtype": "bfloat16" if precision["training_precision"] == "bf16 mixed" else "float32",
    }


def _rollout_metrics(df: pl.DataFrame, prompts: pl.DataFrame) -> dict:
    """The verdicts asset's sample metrics (pass rate, pass@k, solve-rate spread, ...) on the rollouts,
    and the share of groups (a prompt's rollouts in one step) whose rewards were all equal."""
    m = {f"rollout_{k}": float(v) for k, v in sample_metrics(df, prompts).items()}
    return {
        "rollouts": df.height,
        "rollout_prompts": df["prompt_id"].n_unique(),
        "rollout_zero_std_share": zero_std_share(df),
        **m,
    }


def _policy_metadata(
    rc: RoundContext, prov: dict, artifact, metrics: dict, reference: dict | None, verifier: dict | None
) -> dict:
    cfg = rc.config
    return {
        **parent_metadata(rc.parent),
        "weights_hash": prov["weights_hash"],
        "data_hash": prov["data_hash"],
        "config_hash": prov["config_hash"],
        "round_config_hash": cfg.round_hash(),
        "init": cfg.training.init,
        "method": cfg.training.method,
        **({"adapter_hash": prov["adapter_hash"]} if prov.get("adapter_hash") else {}),
        "artifact": dg.MetadataValue.path(rc.store.where(artifact)),
        "train_loss": metrics["train_loss"],
        "final_loss": metrics["final_loss"],
        "steps": metrics["steps"],
        "train_seconds": metrics["seconds"],
        "objective": cfg.training.objective,
        **({"phase": rc.phase} if rc.phase else {}),
        **(
            {
                "reference_policy": reference["policy_id"],
                "reward_margin": metrics["reward_margin"],
                "reward_accuracy": metrics["reward_accuracy"],
            }
            if reference
            else {}
        ),
        **(
            {"verifier_pairs": verifier["pairs"], "verifier_reward_accuracy": verifier["reward_accuracy"]}
            if verifier
            else {}
        ),
        **{k: v for k, v in metrics.items() if k.startswith("rollout")},
        **{
            k: metrics[k]
            for k in ("first_reward", "final_reward", "generated_tokens", "trained_tokens")
            if metrics.get(k) is not None
        },
        **{f"tracker_run_{name}": run for name, run in metrics.get("tracker_runs", {}).items()},
        **_per_step_metadata(metrics.get("per_step") or []),
    }


def _per_step_metadata(per_step: list[dict]) -> dict:
    """GRPO's logged steps as TRL saw them: mean reward and the share of zero-advantage groups."""
    if not per_step:
        return {}
    shares = [s["frac_reward_zero_std"] for s in per_step]
    return {
        "frac_reward_zero_std_mean": float(sum(shares) / len(shares)),
        "per_step": dg.MetadataValue.md(markdown_table(pl.DataFrame(per_step))),
    }


def _train_verifier(rc: RoundContext, base, work) -> dict:
    """V-STaR's verifier on (correct, incorrect) pairs of every round so far (train.plan)."""
    t = rc.config.training
    pairs = verifier_pairs(rc.store, rc.key, t.verifier.max_pairs_per_prompt)
    if pairs.height == 0:
        raise dg.Failure(description=f"{rc.key}: V-STaR verifier has no (correct, incorrect) pair in any round yet")
    rc.log(f"V-STaR verifier: DPO on {pairs.height} pairs of rounds 1..{rc.index}")
    return train_verifier(t, rc.index, pairs, base, work)


@dg.asset(**ROUND, kinds={"pytorch"}, **on("gpu"), deps=["policy"])
@measured
def evaluation(
    context: dg.AssetExecutionContext, experiment: ExperimentResource, eval_prompts: pl.DataFrame
) -> pl.DataFrame:
    """Greedy exact match of this round's policy on the held-out set, per difficulty."""
    rc = RoundContext.of(context, experiment)
    store, key = rc.store, rc.key
    artifact = store.model_dir(key)
    if not is_complete(artifact):
        raise dg.Failure(
            description=f"no complete policy artifact for {key} at {store.where(artifact)}; materialize policy first"
        )
    df = evaluate_artifact(context, rc.experiment, eval_prompts, key, artifact)
    acc, base = accuracy_by_difficulty(df), evaluated_accuracy(store, "base")
    front = frontier_of(rc.config.frontier_scope(), base, measured=acc)
    before = evaluated_accuracy(store, rc.parent_key or "base").get(front)
    meta = {f"accuracy_d{d}": a for d, a in acc.items()}
    meta.update({f"base_accuracy_d{d}": base[d] for d in acc if d in base})  # the UI plots it beside each round
    meta.update(sampled_eval_metrics(context, rc.experiment, eval_prompts, key, artifact))
    meta.update(lm_eval_metrics(context, rc.experiment, key, artifact))
    meta["frontier"] = front
    meta["frontier_accuracy"] = acc.get(front, 0.0)
    if before is not None:
        meta["frontier_delta"] = acc.get(front, 0.0) - before
    tracked = log_round(
        rc.tracking,
        rc.index,
        {
            **round_metrics(store, key),
            **{k: v for k, v in meta.items() if k.startswith("accuracy_d") or k == "frontier_accuracy"},
        },
    )
    meta.update({f"tracker_rounds_run_{name}": run for name, run in tracked.items()})
    context.add_output_metadata(meta)
    return df


@dg.asset(**ROUND, kinds={"polars"}, **on("cpu"), deps=["evaluation", "training_set", "verdicts"])
@measured
def round_diff(context: dg.AssetExecutionContext, experiment: ExperimentResource) -> pl.DataFrame:
    """What this round changed against the one before (the base model for r001): held-out
    prompts newly solved and lost per difficulty, the kept set's overlap and answer length,
    answer diversity, easy-sample collapse (filters/diff.py)."""
    rc = RoundContext.of(context, experiment)
    diff = diff_rounds(rc.store, rc.parent_key or "base", rc.key)
    context.add_output_metadata(
        {**diff.numbers, "against": rc.parent_key or "base", "diff": dg.MetadataValue.md(diff.markdown())}
    )
    return diff.table


ROUND_ASSETS = [prompts, sampling_plan, samples, verdicts, repairs, training_set, pairs, policy, evaluation, round_diff]
