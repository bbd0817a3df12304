"""`selftaught lineage`: the chain behind a round or a training row, from the files of
the run (tables and provenance.json), so it works without the Dagster instance.

    base model -> parent policy -> samples -> verdicts -> training rows -> policy -> evaluation
"""

from __future__ import annotations

from typing import cast

import polars as pl

from filters.metrics import accuracy_by_difficulty
from selftaught.files import file_hash, read_parquet
from selftaught.round_keys import parent_key, round_index
from selftaught.store import Store
from train.artifact import verified_weights_hash


class LineageError(ValueError):
    """The round or row asked for does not exist in this experiment."""


def _objective_label(objective: str) -> str:
    """How lineage names a policy's training (the objective's capability `label`)."""
    from selftaught.plugins import OBJECTIVES, PluginError

    try:
        return OBJECTIVES.get(objective).caps.label
    except PluginError:
        return f"{objective} training"


def _weights_on_disk(store: Store, name: str) -> str:
    """Whether the model's files still have the hash its provenance records (a local store:
    an object store's lineage reads provenance without downloading weights)."""
    if store.remote:
        return ""
    try:
        verified_weights_hash(store.model_dir(name))
        return " (verified on disk)"
    except ValueError as exc:  # the files changed after the round wrote them
        return f" CHANGED ON DISK ({str(exc).split('(weights_hash ')[-1].split(')')[0]})"
    except OSError as exc:
        return f" (cannot read the weights: {exc.strerror or exc})"


def _model(store: Store, name: str) -> str:
    where = store.where(store.root / "models" / name)
    p = store.provenance(name)
    if p is None:
        return f"{name}: no complete artifact at {where}"
    bits = [f"weights {p['weights_hash']}{_weights_on_disk(store, name)}"]
    if p.get("adapter_hash"):
        bits.append(f"adapter {p['adapter_hash']} on base {p.get('adapter_base_hash')}")
    if name == "base":
        bits.append(f"from {p.get('base')}, config {p.get('config_hash')}")
    else:
        parent = p.get("parent", {})
        how = _objective_label(p.get("objective") or "sft")
        bits += [
            f"{p.get('method')} {how} (init {p.get('init')}) of {parent.get('policy_id')} "
            f"({parent.get('weights_hash')})",
            f"training data {p.get('data_hash')}",
            f"config {p.get('config_hash')}",
            f"dagster run of parent {parent.get('run_id')}",
        ]
    return f"policy {name}: " + ", ".join(bits) + f"  [{where}]"


def _table(store: Store, name: str, key: str) -> pl.DataFrame:
    path = store.table_path(name, key)
    if not path.is_file():
        raise LineageError(f"round {key} has no {name} table at {store.where(path)}")
    return read_parquet(path)


def _sha(store: Store, name: str, key: str) -> str:
    return file_hash(store.table_path(name, key))[:16]


def round_chain(store: Store, key: str) -> list[str]:
    """Lines describing round `key`, from the base model to its evaluation."""
    try:
        round_index(key)
    except ValueError as exc:
        raise LineageError(str(exc)) from None
    if not store.table_path("prompts", key).is_file():
        done = store.partitions("prompts")
        raise LineageError(f"round {key} does not exist in {store.location()} (rounds: {', '.join(done) or 'none'})")
    parent = parent_key(key) or "base"
    lines = [_model(store, "base")]
    if parent != "base":
        lines.append("-> " + _model(store, parent))
    s = _table(store, "samples", key)
    if s.height:  # none in an online (grpo) round: its rollouts follow below
        first = s.row(0, named=True)
        lines.append(
            f"-> samples {key}: {s.height} rows = {s['prompt_id'].n_unique()} prompts x "
            f"{s['sample_idx'].n_unique()}; written by {first['policy_id']} ({first['policy_hash'] or '-'}); "
            f"{first['backend']}, temperature {first['temperature']}, top_p {first['top_p']}, "
            f"max_new_tokens {first['max_new_tokens']}, seed {first['seed']}  "
            f"[sha256 {_sha(store, 'samples', key)}]"
        )
    if store.table_path("verdicts", key).is_file() and (v := _table(store, "verdicts", key)).height:
        counts = ", ".join(f"{n} {verdict}" for verdict, n in v.group_by("verdict").len().sort("verdict").iter_rows())
        lines.append(
            f"-> verdicts {key}: {', '.join(sorted(set(v['verifier'])))}: {counts}  "
            f"[sha256 {_sha(store, 'verdicts', key)}]"
        )
    if store.table_path("repairs", key).is_file() and (r := _table(store, "repairs", key)).height:
        ok = (r["verdict"] == "correct").sum()
        lines.append(
            f"-> repairs {key}: {r.height} {r['mode'][0]} attempts, {ok} verified  "
            f"[sha256 {_sha(store, 'repairs', key)}]"
        )
    if store.table_path("training_set", key).is_file() and (t := _table(store, "training_set", key)).height:
        by = ", ".join(f"{src} {n}" for src, n in t.group_by("source_round").len().sort("source_round").iter_rows())
        lines.append(
            f"-> training_set {key}: {(t['source_round'] == key).sum()} new rows, {t.height} in all "
            f"({by})  [sha256 {_sha(store, 'training_set', key)}]"
        )
    if store.table_path("rollouts", key).is_file():
        r = _table(store, "rollouts", key)
        counts = ", ".join(f"{n} {verdict}" for verdict, n in r.group_by("verdict").len().sort("verdict").iter_rows())
        lines.append(
            f"-> rollouts {key}: {r.height} rows generated while training (objective grpo), "
            f"{r['prompt_id'].n_unique()} prompts, steps {cast(int, r['step'].min())}..{cast(int, r['step'].max())}; "
            f"{', '.join(sorted(set(r['verifier'])))}: {counts}  [sha256 {_sha(store, 'rollouts', key)}]"
        )
    if store.provenance(key) is not None:
        lines.append("-> " + _model(store, key))
    if store.table_path("evaluation", key).is_file():
        acc = accuracy_by_difficulty(_table(store, "evaluation", key))
        shown = ", ".join(f"d{d} {a:.1%}" for d, a in acc.items())
        lines.append(f"-> evaluation {key}: {shown}  [sha256 {_sha(store, 'evaluation', key)}]")
    return lines


def row_chain(store: Store, row_id: str) -> list[str]:
    """Lines for one training row id (<round>/<prompt_id>/<sample_idx> or .../repair-<k>), then
    its round's chain."""
    source, _, rest = row_id.partition("/")
    pid, _, idx = rest.rpartition("/")
    repair = idx.startswith("repair-") and idx[7:].isdigit()
    if not pid or not (idx.isdigit() or repair):
        raise LineageError(f"not a training row id: {row_id!r} (expected <round>/<prompt_id>/<sample_idx>)")
    used = [
        k
        for k in store.partitions("training_set")
        if read_parquet(store.table_path("training_set", k), columns=["row_id"])["row_id"].is_in([row_id]).any()
    ]
    if source == "warm_start":
        if not used:
            raise LineageError(f"training row {row_id} is in no training set of {store.location()}")
        return [
            f"row {row_id}: a warm-start reference example (not model-written); "
            f"in the training sets of {', '.join(used)}"
        ]
    if repair:
        return _repair_chain(store, row_id, source, pid, int(idx[7:]), used)
    if store.table_path("rollouts", source).is_file():
        return _rollout_chain(store, row_id, source, pid, int(idx))
    s = _table(store, "samples", source).filter((pl.col("prompt_id") == pid) & (pl.col("sample_idx") == int(idx)))
    if s.height == 0:
        raise LineageError(f"round {source} has no sample {idx} of prompt {pid}")
    v = _table(store, "verdicts", source).filter((pl.col("prompt_id") == pid) & (pl.col("sample_idx") == int(idx)))
    sample = s.row(0, named=True)
    verdict = v.row(0, named=True) if v.height else {"verdict": "?", "reason": "no verdict", "verifier": "?"}
    head = [
        f"row {row_id}: sample {idx} of prompt {pid}, written in round {source} by policy "
        f"{sample['policy_id']} ({sample['policy_hash'] or '-'})",
        f"  verdict {verdict['verdict']} by {verdict['verifier']}: {verdict['reason']}",
        f"  completion: {sample['completion'][:120]!r}",
        f"  in the training sets of {', '.join(used) or 'no round'}; trained into the policies of those rounds",
    ]
    return head + ["", f"round {source}:"] + round_chain(store, source)


def _repair_chain(store: Store, row_id: str, source: str, pid: str, k: int, used: list[str]) -> list[str]:
    r = _table(store, "repairs", source).filter((pl.col("prompt_id") == pid) & (pl.col("repair_idx") == k))
    if r.height == 0:
        raise LineageError(f"round {source} has no repair {k} of prompt {pid}")
    row = r.row(0, named=True)
    lines = [
        f"row {row_id}: {row['mode']} attempt {k} of prompt {pid}, written in round {source} by policy "
        f"{row['policy_id']} ({row['policy_hash'] or '-'})",
        f"  verdict {row['verdict']}: {row['reason']}",
        f"  the policy saw: {row['attempt_prompt'][:160]!r}",
        f"  completion: {row['completion'][:120]!r} (trained on the original prompt)",
    ]
    if row["failed_sample_idx"] is not None:
        lines.append(
            f"  repairs sample {row['failed_sample_idx']} ({source}/{pid}/{row['failed_sample_idx']}), "
            f"feedback: {row['feedback']!r}"
        )
    lines.append(f"  in the training sets of {', '.join(used) or 'no round'}")
    return lines + ["", f"round {source}:"] + round_chain(store, source)


def _rollout_chain(store: Store, row_id: str, source: str, pid: str, k: int) -> list[str]:
    """An online (grpo) round trains on its rollouts: the row is the rollout, with the step that made it."""
    r = _table(store, "rollouts", source).filter((pl.col("prompt_id") == pid) & (pl.col("sample_idx") == k))
    if r.height == 0:
        raise LineageError(f"round {source} has no rollout {k} of prompt {pid}")
    row = r.row(0, named=True)
    reward = "none (unverifiable)" if row["reward"] is None else f"{row['reward']:g}"
    return (
        [
            f"row {row_id}: rollout {k} of prompt {pid}, generated at training step {row['step']} of round "
            f"{source}'s GRPO (the policy being trained, started from the parent below)",
            f"  verdict {row['verdict']} by {row['verifier']}: {row['reason']}; reward {reward}",
            f"  completion: {row['completion'][:120]!r}",
            f"  trained into the policy of round {source}",
        ]
        + ["", f"round {source}:"]
        + round_chain(store, source)
    )
