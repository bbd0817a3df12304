"""Where an experiment stands, read from the Dagster instance: which rounds are
complete, what a round still needs, whether one is running, whether it plateaued.
Shared by the CLI, the nightly schedule and the auto-continue sensor."""

from __future__ import annotations

import dagster as dg

from assets.parent import latest_materialization
from pipelines.keys import CLI_TAG, EXPERIMENT_TAG, asset_key, key_prefix
from selftaught.config import ExperimentConfig
from selftaught.files import TableError, table_problem
from selftaught.lock import ExperimentLock
from selftaught.round_keys import control_key, is_round_key, parent_key, round_index, round_key
from selftaught.store import Store, is_complete
from train.artifact import verified_weights_hash


def _round_graph() -> tuple[list[str], dict[str, list[str]]]:
    """The round's stages in dependency order (ties: the order assets/rounds.py defines
    them) and each stage's upstream stages, read from the Dagster assets themselves."""
    from assets import rounds as round_module

    deps: dict[str, list[str]] = {}
    for asset in dg.load_assets_from_modules([round_module]):
        for key in asset.keys:
            if asset.group_names_by_key[key] == "round":
                deps[key.path[-1]] = [d.path[-1] for d in asset.asset_deps[key]]
    upstream = {name: sorted(d for d in ds if d in deps) for name, ds in deps.items()}
    order, done = [], set()
    while len(order) < len(deps):
        ready = [n for n in deps if n not in done and set(upstream[n]) <= done]
        if not ready:
            raise RuntimeError(f"the round's assets have a dependency cycle: {sorted(set(deps) - done)}")
        order.append(ready[0])
        done.add(ready[0])
    return order, upstream


# Derived once from the asset graph (adding a stage to assets/rounds.py is the only edit).
ROUND_ORDER, UPSTREAM = _round_graph()
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def todo(instance, cfg: ExperimentConfig, key: str, store: Store | None = None, log=None) -> list[str]:
    """Round assets still to (re)materialize: from the first missing or stale one onward. Stale:
    older than an upstream stage, or materialized under another config (ExperimentConfig.round_hash).
    With `store`, the files are checked too (Dagster's records do not see a table truncated or
    a model deleted after it was written): a damaged one is redone, and `log` says why."""
    want, seen = cfg.for_round(round_index(key)).round_hash(), {}
    for i, name in enumerate(ROUND_ORDER):
        rec = latest_materialization(instance, asset_key(cfg.name, name), key)
        if rec is None or _config_hash(rec) not in (None, want) or any(rec.timestamp < seen[u] for u in UPSTREAM[name]):
            return ROUND_ORDER[i:]
        if store is not None and _damaged(_file_problem(store, name, key), key, name, log):
            return ROUND_ORDER[i:]
        seen[name] = rec.timestamp
    return []


def control_todo(instance, cfg: ExperimentConfig, key: str, store: Store | None = None, log=None) -> list[str]:
    """The control's stages of round `key` still to (re)materialize (none without
    evaluation.control): missing, made under another control hash, older than what they read
    (the control of the round before; the control model and the round's evaluation), or, with
    `store`, with a damaged file."""
    from assets.control import CONTROL_ASSETS

    want = cfg.for_round(round_index(key)).control_hash()
    if want is None:
        return []
    order = [a.key.path[-1] for a in CONTROL_ASSETS]
    before = parent_key(key)
    reads = {
        "control_policy": [("control_policy", before)] if before else [],
        "control_evaluation": [("control_policy", key), ("evaluation", key)],
    }

    def latest(name: str, partition: str):
        return latest_materialization(instance, asset_key(cfg.name, name), partition)

    for i, name in enumerate(order):
        rec = latest(name, key)
        meta = rec.asset_materialization.metadata if rec is not None and rec.asset_materialization else {}
        made = meta.get("control_hash")
        if rec is None or made is None or made.value != want:
            return order[i:]
        for upstream, partition in reads[name]:
            up = latest(upstream, partition)
            if up is None or rec.timestamp < up.timestamp:
                return order[i:]
        if store is not None and _damaged(_control_file_problem(store, name, key), key, name, log):
            return order[i:]
    return []


def _damaged(problem: str | None, key: str, name: str, log) -> bool:
    """Whether a stage's file has a `problem` (then `log` says it is redone)."""
    if problem and log:
        log(f"{key}: {problem}; rematerializing from {name}")
    return problem is not None


def _control_file_problem(store: Store, name: str, key: str) -> str | None:
    if name == "control_policy":
        model = store.model_dir(control_key(key))
        return None if is_complete(model) else f"the control model {store.where(model)} is missing or incomplete"
    path = store.table_path(name, key)
    problem = table_problem(path)
    return f"table {store.where(path)} is {problem}" if problem else None


def _file_problem(store: Store, name: str, key: str) -> str | None:
    if name == "policy":
        if not is_complete(store.model_dir(key)):
            return f"the model {store.where(store.model_dir(key))} is missing or incomplete"
        if store.remote:  # verified when a step loads it (hashing here would download every round)
            return None
        try:
            verified_weights_hash(store.model_dir(key))
        except ValueError as exc:  # changed after the round wrote them
            later = [k for k in store.partitions("prompts") if is_round_key(k) and round_index(k) > round_index(key)]
            if later:  # rounds built on the old weights: retraining could not give them their parent back
                raise TableError(
                    f"{exc}. Round {later[0]} was built from them: restore the files (a `selftaught "
                    f"export` copy holds them), or remove {store.where(store.model_dir(key))} and the "
                    "rounds after it to redo them"
                ) from None
            return str(exc).split(": they changed")[0]  # the last round: retrain it (same seeds)
        return None
    path = store.table_path(name, key)
    problem = table_problem(path)
    return f"table {store.where(path)} is {problem}" if problem else None


def _config_hash(rec) -> str | None:
    meta = rec.asset_materialization.metadata if rec.asset_materialization else {}
    value = meta.get("round_config_hash")
    return value.value if value is not None else None


def next_round(instance, cfg: ExperimentConfig) -> tuple[str | None, list[str]]:
    """The first round (in order) that is not complete, and what it still needs: the round's
    stages, else its control's (evaluation.control), requested as a run after the round's, so the
    control never trains beside the round's policy; (None, []) when all are done."""
    for i in range(1, cfg.max_rounds + 1):
        key = round_key(i)
        need = todo(instance, cfg, key) or control_todo(instance, cfg, key)  # the control: a run of its own
        if need:
            return key, need
    return None, []


def running(instance, cfg: ExperimentConfig, store: Store | None = None) -> list[str]:
    """Runs of the experiment that are queued or in progress. With `store`, a run of a
    `selftaught run` that was killed (its lock is free) does not count."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={EXPERIMENT_TAG: cfg.name}, statuses=IN_PROGRESS), limit=5)
    if (
        store is not None
        and any(CLI_TAG in r.tags for r in runs)
        and ExperimentLock(store.root, cfg.name).holder() is None
    ):
        runs = [r for r in runs if CLI_TAG not in r.tags]
    return [r.run_id for r in runs]


def frontier_history(instance, cfg: ExperimentConfig) -> list[tuple[str, float]]:
    """(round, frontier accuracy) for the base model and each completed round, in order."""
    out = []
    base = latest_materialization(instance, asset_key(cfg.name, "base_model"), None)
    if base is not None and "frontier_accuracy" in base.asset_materialization.metadata:
        out.append(("base", base.asset_materialization.metadata["frontier_accuracy"].value))
    for i in range(1, cfg.max_rounds + 1):
        rec = latest_materialization(instance, asset_key(cfg.name, "evaluation"), round_key(i))
        if rec is None:
            break
        out.append((round_key(i), rec.asset_materialization.metadata["frontier_accuracy"].value))
    return out


def too_slow(instance, cfg: ExperimentConfig, min_points_per_hour: float | None) -> str | None:
    """Why to stop, or None: the last evaluated round gained fewer held-out frontier points per
    hour of its wall time than `min_points_per_hour` (its compute ledger row)."""
    if min_points_per_hour is None:
        return None
    from assets.rounds import ROUND_ASSETS
    from assets.stage_costs import experiment_costs
    from filters.ledger import round_ledger

    rounds = experiment_costs(instance, key_prefix(cfg.name), [a.key.path[-1] for a in ROUND_ASSETS])
    if not rounds:
        return None
    last = round_ledger(rounds[-1], None)
    gain = last["points_per_hour"]
    if gain is None or gain >= min_points_per_hour:
        return None
    return (
        f"too slow: {last['round']} gained {gain:+.1f} held-out points per hour ({last['wall_s']:.0f} s), "
        f"below min_points_per_hour {min_points_per_hour:g}"
    )


def plateau(history: list[tuple[str, float]], min_improvement: float, patience: int) -> str | None:
    """Why to stop, or None: the last `patience` rounds did not beat the best before them by `min_improvement`."""
    if len(history) <= patience:
        return None
    before = max(a for _, a in history[:-patience])
    recent = history[-patience:]
    best = max(a for _, a in recent)
    if best <= before or best - before < min_improvement:
        shown = ", ".join(f"{k} {a:.1%}" for k, a in recent)
        return (
            f"plateau: the last {patience} rounds ({shown}) did not beat the earlier best {before:.1%} "
            f"by {min_improvement:.1%}"
        )
    return None
