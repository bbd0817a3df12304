"""`selftaught export <round> --to DIR`: a round's data and policy, in the forms others load.

    DIR/dataset/   a Hugging Face `datasets` dataset: load_dataset("DIR/dataset", "<table>")
        README.md              dataset card: YAML `configs:` (one per table, split train), lineage
        data/<table>.parquet   training_set, pairs, samples, verdicts, rollouts: those the round has rows in
        selftaught.yaml        the experiment config, resolved (extends applied, defaults filled in)
    DIR/model/     the round's policy: AutoModelForCausalLM.from_pretrained("DIR/model")
        README.md              model card: base, parent, objective, settings, held-out accuracy, lineage
        config.json, *.safetensors, tokenizer files   the merged model (models/<round>/model)
        adapter/               LoRA rounds: the adapter on the experiment's base model,
                               PeftModel.from_pretrained(base, "DIR/model", subfolder="adapter")
        selftaught.yaml        as above

Decisions:
- Tables are copied byte for byte from tables/<table>/<round>.parquet, so the sha256 that
  `selftaught lineage` prints, and the policy's data_hash, are those of the exported files.
  `samples` ships with `verdicts`: a verdict names its sample (prompt_id, sample_idx) and
  holds no text. The default config is the table the policy trained on.
- A round is exported once complete (policy artifact and evaluation written); the weights
  are checked against their provenance before they are copied.
- The adapter's base is the experiment's base artifact (model.base after its warm start):
  adapter_config.json's base_model_name_or_path, a path on the machine that trained it, is
  rewritten to model.base when that is a hub id used without a warm start, else emptied;
  the card names the base weights hash the adapter applies to.
- The card's "made by" line is `selftaught run --config <the config given to export>
  --rounds <round index>`; selftaught.yaml beside it has storage_root data/runs/<name> and no
  storage options (machine specific). The lineage chain is `selftaught lineage`'s, without
  the storage locations it names (paths of the machine that ran it).
- --push-to-hub REPO: one name for both repos, the model repo REPO and the dataset repo
  REPO (huggingface.co/datasets/REPO): the hub keeps model and dataset repos apart, and the
  model card's `datasets: [REPO]` links the two. A missing token (HF_TOKEN or `hf auth
  login`), HF_HUB_OFFLINE or a malformed repo id fail before anything is written or sent.
- DIR is built in a temporary folder beside it and renamed into place; an existing
  non-empty DIR is replaced only with --force.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

import polars as pl
import yaml

from filters.metrics import evaluated_accuracy
from pipelines.lineage import round_chain
from selftaught import __version__
from selftaught.files import file_hash, publish_dir, read_parquet, table_problem, umask
from selftaught.round_keys import is_round_key, parent_key, round_index
from selftaught.store import Store, model_path
from train.artifact import adapter_path, verified_weights_hash
from train.gguf import is_gguf
from train.plan import data_table, round_settings

# exported tables, in card order, and what each holds
TABLES = {
    "training_set": "the round's training rows (what objective sft trains on): kept verified samples and repairs, "
    "plus earlier rounds' rows and the warm start where the config carries them; `row_id` is "
    "<source_round>/<prompt_id>/<sample_idx>",
    "pairs": "preference pairs (chosen, rejected) from the round's samples (what objective dpo trains on)",
    "samples": "every completion the parent policy wrote for the round's prompts, with its sampling settings",
    "verdicts": "the verifier's verdict on each sample (join on prompt_id, sample_idx): correct / incorrect / "
    "unverifiable, extracted answer, reason",
    "rollouts": "completions generated while GRPO trained, with their verdicts and rewards (what objective grpo "
    "trains on); `step` is the training step that generated each",
}
CONFIG_FILE = "selftaught.yaml"
LICENSE_NOTE = (
    "selftaught is MIT licensed; these weights are a fine-tune of the base model named above and its "
    "license applies to them. The data was written by the models named in the lineage, so the base model's "
    "terms on generated output apply to it too."
)


class ExportError(ValueError):
    """The round cannot be exported as asked (unknown or incomplete round, target not empty, no hub token)."""


def export_round(
    cfg,
    store: Store,
    round_key: str,
    to_dir: str | Path,
    force: bool = False,
    *,
    config_path: str | Path | None = None,
    repo: str | None = None,
) -> dict:
    """Write round `round_key` of experiment `cfg` (its `store`) to `to_dir`: dataset/ and model/
    with their cards. `config_path`: the config file named in the card's command line (default the
    exported selftaught.yaml); `repo`: the hub repo the cards link to. Returns what was written."""
    to = Path(to_dir).expanduser().resolve()
    prov = _complete_round(store, round_key)
    _check_target(to, force, store)
    artifact = store.model_dir(round_key)
    try:
        verified_weights_hash(artifact)  # the card states this hash: the files must still have it
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    trained_on = data_table(prov.get("objective", "sft"))
    tables = {name: store.table_path(name, round_key) for name in TABLES}
    for name, path in tables.items():
        problem = table_problem(path) if path.exists() else None
        if problem:
            raise ExportError(
                f"the {name} table of round {round_key} ({path}) is damaged ({problem}): "
                "`selftaught run` rematerializes it; nothing was exported"
            )
    tables = {n: p for n, p in tables.items() if p.is_file() and _rows(p)}
    facts = _facts(cfg, store, round_key, prov, tables, trained_on, config_path)

    try:
        to.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{to.name}.", suffix=".tmp", dir=to.parent))
    except OSError as exc:
        raise ExportError(f"cannot write to {to}: {exc.strerror or exc} ({exc.filename})") from None
    try:
        os.chmod(work, 0o777 & ~umask())
        config_yaml = _config_yaml(cfg)
        data_dir = work / "dataset"
        (data_dir / "data").mkdir(parents=True)
        for name, path in tables.items():
            shutil.copyfile(path, data_dir / "data" / f"{name}.parquet")
        default = trained_on if trained_on in tables else next(iter(tables), None)
        (data_dir / "README.md").write_text(_dataset_card(cfg, round_key, facts, tables, default, repo))
        (data_dir / CONFIG_FILE).write_text(config_yaml)

        model_dir = work / "model"
        shutil.copytree(model_path(artifact), model_dir)
        has_adapter = adapter_path(artifact).is_dir()
        if has_adapter:
            shutil.copytree(adapter_path(artifact), model_dir / "adapter", ignore=shutil.ignore_patterns("README.md"))
            _point_adapter_at_base(model_dir / "adapter", cfg)
        (model_dir / "README.md").write_text(_model_card(cfg, store, round_key, prov, facts, has_adapter, repo))
        (model_dir / CONFIG_FILE).write_text(config_yaml)
        publish_dir(work, to)
    except OSError as exc:  # a full disk, a folder that is not writable: nothing half-written is left
        shutil.rmtree(work, ignore_errors=True)
        raise ExportError(
            f"writing the export to {to} failed: {exc.strerror or exc} ({exc.filename}); nothing was exported"
        ) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {
        "round": round_key,
        "to": str(to),
        "dataset": {"path": str(to / "dataset"), "tables": facts["rows"], "default": default},
        "model": {"path": str(to / "model"), "weights_hash": prov["weights_hash"], "adapter": has_adapter},
        "warnings": facts["warnings"],
    }


def _complete_round(store: Store, key: str) -> dict:
    """The round's provenance, or ExportError naming the rounds that can be exported."""
    started = store.partitions("prompts")
    complete = [k for k in store.partitions("evaluation") if k in started and store.provenance(k) is not None]
    listed = f"complete rounds: {', '.join(complete) or 'none'}" + (
        f"; started, not complete: {', '.join(k for k in started if k not in complete)}"
        if set(started) - set(complete)
        else ""
    )
    if not is_round_key(key) or key not in started:
        raise ExportError(f"round {key!r} does not exist in {store.location()} ({listed})")
    prov = store.provenance(key)
    missing = [
        what
        for what, ok in (
            ("policy artifact", prov is not None),
            ("evaluation", store.table_path("evaluation", key).is_file()),
        )
        if not ok
    ]
    if missing:
        raise ExportError(
            f"round {key} is not complete in {store.location()}: no {' or '.join(missing)} yet; "
            f"finish it with selftaught run --rounds {round_index(key)} ({listed})"
        )
    return cast(dict, prov)  # None is in `missing`, raised above


def _check_target(to: Path, force: bool, store: Store) -> None:
    if to.exists() and not to.is_dir():
        raise ExportError(f"{to} exists and is not a folder")
    above = next(p for p in to.parents if p.exists())
    if not above.is_dir():
        raise ExportError(f"cannot export to {to}: {above} is a file, not a folder")
    if store.root.resolve().is_relative_to(to):  # --force would remove the experiment
        raise ExportError(f"{to} holds the experiment's storage root {store.root}: export to another folder")
    if to.is_dir() and any(to.iterdir()) and not force:
        raise ExportError(f"{to} exists and is not empty: pass --force to replace it, or name another folder")


def _facts(cfg, store: Store, key: str, prov: dict, tables: dict[str, Path], trained_on: str, config_path) -> dict:
    """What both cards state: lineage, hashes, counts, the command that made the round."""
    cfg = cfg.for_round(round_index(key))  # the config the round ran (its phase's)
    verifiers = set()
    for name in ("verdicts", "rollouts"):
        if name in tables:
            verifiers |= set(read_parquet(tables[name], columns=["verifier"])["verifier"].drop_nulls())
    rows = {name: _rows(path) for name, path in tables.items()}
    warnings = []
    if prov.get("config_hash") != cfg.section_hash():
        warnings.append(
            f"the config given to export (hash {cfg.section_hash()}) is not the one round {key} was "
            f"trained with (hash {prov.get('config_hash')}): the command and {CONFIG_FILE} may not "
            "reproduce it"
        )
    data = store.table_path(trained_on, key)
    if data.is_file() and file_hash(data)[:16] != prov.get("data_hash"):
        warnings.append(
            f"tables/{trained_on}/{key}.parquet changed after the policy trained on it "
            f"(data_hash {prov.get('data_hash')}, now {file_hash(data)[:16]})"
        )
    parent = prov.get("parent", {})
    return {
        "parent": f"{parent.get('policy_id')} (weights {parent.get('weights_hash')})",
        "verifier": ", ".join(sorted(verifiers)) or (cfg.verification.verifier or "-"),
        "config_hash": prov.get("config_hash"),
        "round_hash": cfg.round_hash(),
        "command": f"selftaught run --config {config_path or CONFIG_FILE} --rounds {round_index(key)}",
        "rows": rows,
        "sha256": {n: file_hash(p)[:16] for n, p in tables.items()},
        "trained_on": trained_on,
        "warnings": warnings,
        "chain": [re.sub(r"  \[(?!sha256 )[^]]*\]$", "", line) for line in round_chain(store, key)],
    }


def _lineage(facts: dict) -> str:
    """The lineage section, the same in both cards."""
    counts = ", ".join(f"{n} {name}" for name, n in facts["rows"].items()) or "none"
    lines = [
        "## Lineage",
        "",
        f"- parent policy: {facts['parent']}",
        f"- verifier: {facts['verifier']}",
        f"- config hash: {facts['config_hash']} (round hash {facts['round_hash']})",
        f"- rows: {counts}; the policy trained on `{facts['trained_on']}`",
        f"- selftaught version: {__version__}",
        f"- made by: `{facts['command']}`",
        *[f"- warning: {w}" for w in facts["warnings"]],
        "",
        "The chain, base model to evaluation (`selftaught lineage`; sha256 of the files exported here):",
        "",
        "```",
        *facts["chain"],
        "```",
        "",
    ]
    return "\n".join(lines)


def _front_matter(meta: dict) -> str:
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n"


def _dataset_card(cfg, key: str, facts: dict, tables: dict[str, Path], default: str | None, repo: str | None) -> str:
    configs = [
        {
            "config_name": name,
            "data_files": [{"split": "train", "path": f"data/{name}.parquet"}],
            **({"default": True} if name == default else {}),
        }
        for name in tables
    ]
    head = _front_matter(
        {
            "pretty_name": f"selftaught {cfg.name} round {key}",
            "tags": ["selftaught", "self-training", "synthetic"],
            "configs": configs,
        }
    )
    where = repo or "path/to/dataset"
    body = [
        f"# {cfg.name}, round {key}: data",
        "",
        f"One round of iterative self-training (selftaught {__version__}): "
        + (
            f"GRPO trained policy {key} online from its parent, on completions it generated for the round's "
            "prompts and the verifier rewarded (`rollouts`)."
            if facts["trained_on"] == "rollouts"
            else f"the parent policy sampled the round's prompts, the verifier judged each completion, and policy "
            f"{key} trained on `{facts['trained_on']}`."
        ),
        "",
        "| config | rows | sha256 | what |",
        "|---|---|---|---|",
        *[f"| `{name}` | {facts['rows'][name]} | {facts['sha256'][name]} | {TABLES[name]} |" for name in tables],
        "",
        "Columns:",
        "",
        *[f"- `{name}`: {', '.join(pl.read_parquet_schema(path))}" for name, path in tables.items()],
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset({where!r}, {default!r})  # split "train"',
        "```",
        "",
        _lineage(facts),
    ]
    return head + "\n".join(body)


def _model_card(cfg, store: Store, key: str, prov: dict, facts: dict, has_adapter: bool, repo: str | None) -> str:
    cfg = cfg.for_round(round_index(key))
    base = str(cfg.model.base)
    meta: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "text-generation"}
    if _hub_id(base):
        meta["base_model"] = base
    meta["tags"] = ["selftaught", "self-training", prov.get("objective", "sft"), prov.get("method", "full")]
    if repo:
        meta["datasets"] = [repo]
    base_prov = store.provenance("base") or {}
    warm = cfg.model.warm_start is not None
    settings = dataclasses.asdict(round_settings(cfg.training, round_index(key)))
    if settings.get("method") != "lora":
        settings.pop("lora", None)
    settings = {k: v for k, v in settings.items() if v not in (None, (), [], {})}
    metrics = {k: v for k, v in (prov.get("metrics") or {}).items() if isinstance(v, (int, float, str))}
    accuracy = {"base": evaluated_accuracy(store, "base")}
    if (parent := parent_key(key)) is not None:
        accuracy[parent] = evaluated_accuracy(store, parent)
    accuracy[key] = evaluated_accuracy(store, key)
    levels = sorted({d for acc in accuracy.values() for d in acc})
    level = cfg.task.plugin().caps.level_name
    unit = f"{level}s" if level == "digit" else "level"
    where = repo or "path/to/model"
    body = [
        f"# {cfg.name}, round {key}: policy",
        "",
        f"The policy of round {key} of iterative self-training (selftaught {__version__}) "
        f"on the {cfg.task.plugin().name} task.",
        "",
        f"- base model: `{base}`"
        + (" (built offline by selftaught: a randomly initialised tiny model)" if base == "tiny" else "")
        + (", warm-started on worked examples" if warm else "")
        + f"; base weights {base_prov.get('weights_hash')}",
        f"- parent policy: {facts['parent']}",
        f"- objective: {prov.get('objective', 'sft')}, method {prov.get('method')}, init {prov.get('init')}"
        + (
            f", reference {prov['reference']['policy_id']} ({prov['reference']['weights_hash']})"
            if prov.get("reference")
            else ""
        ),
        f"- trained on: `{facts['trained_on']}` ({facts['rows'].get(facts['trained_on'], 0)} rows, data hash "
        f"{prov.get('data_hash')})",
        f"- weights: {prov['weights_hash']}"
        + (
            f"; adapter {prov.get('adapter_hash')} on base weights {prov.get('adapter_base_hash')}"
            if has_adapter
            else ""
        ),
        "",
        "## Training settings",
        "",
        *[f"- {k}: {_plain(v)}" for k, v in settings.items()],
        "",
        "Training metrics: " + (", ".join(f"{k} {_plain(v)}" for k, v in metrics.items()) or "none"),
        "",
        "## Held-out accuracy",
        "",
        f"Greedy exact match on the held-out set, per difficulty ({unit}; the round's evaluation table):",
        "",
        "| policy | " + " | ".join(f"{unit} {d}" for d in levels) + " |",
        "|---|" + "---|" * len(levels),
        *[
            f"| {pid} | " + " | ".join(f"{acc[d]:.1%}" if d in acc else "-" for d in levels) + " |"
            for pid, acc in accuracy.items()
        ],
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f"model = AutoModelForCausalLM.from_pretrained({where!r})",
        f"tokenizer = AutoTokenizer.from_pretrained({where!r})",
        "```",
        "",
    ]
    if has_adapter:
        body += [
            f"`adapter/` holds the LoRA adapter; the weights above are it merged into the base. It applies "
            f"to the experiment's base model (weights {prov.get('adapter_base_hash')}"
            + (", after its warm start" if warm else "")
            + "):",
            "",
            "```python",
            "from peft import PeftModel",
            "",
            f'policy = PeftModel.from_pretrained(base, {where!r}, subfolder="adapter")',
            "```",
            "",
        ]
    body += ["## License", "", LICENSE_NOTE, "", _lineage(facts)]
    return _front_matter(meta) + "\n".join(body)


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _plain(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_plain(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_plain(x) for x in v)
    return str(v)


def _hub_id(base: str) -> bool:
    """model.base names a hub repo (not tiny, a local folder, a .gguf or package:...)."""
    return (
        base != "tiny"
        and not is_gguf(base)
        and not Path(base).expanduser().exists()
        and re.fullmatch(r"[\w.-]+/[\w.-]+|[\w.-]+", base) is not None
    )


def _point_adapter_at_base(adapter: Path, cfg) -> None:
    path = adapter / "adapter_config.json"
    if not path.is_file():
        return
    conf = json.loads(path.read_text())
    base = str(cfg.model.base)
    conf["base_model_name_or_path"] = base if _hub_id(base) and cfg.model.warm_start is None else None
    path.write_text(json.dumps(conf, indent=2, sort_keys=True))


def _config_yaml(cfg) -> str:
    data = cfg.model_dump(mode="json")
    data["storage_root"] = f"data/runs/{cfg.name}"
    data.pop("storage_options", None)
    data.pop("storage_cache", None)
    data["sampling"]["vllm"]["python"] = None  # a path on this machine, not part of the experiment
    return (
        "# The experiment config, resolved (extends applied, defaults filled in), as exported by "
        f"selftaught {__version__}\n" + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
    )


# --- the hub -----------------------------------------------------------------------------


def hub_token(repo: str) -> str:
    """The token to push `repo` with; ExportError, before any network call, when there is none,
    the hub is off (HF_HUB_OFFLINE) or `repo` is not a repo id."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise ExportError(f"--push-to-hub {repo!r} is not a hub repo id (namespace/name): {exc}") from None
    if "/" not in repo:
        raise ExportError(f"--push-to-hub {repo!r}: name the namespace too (user/name or org/name)")
    token = get_token()
    if not token:
        raise ExportError(
            "--push-to-hub needs a Hugging Face token with write access: set HF_TOKEN or run `hf auth login`"
        )
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ExportError("--push-to-hub with HF_HUB_OFFLINE set: unset it to reach the hub")
    return token


def push_to_hub(to_dir: str | Path, repo: str, private: bool = False) -> dict:
    """Upload DIR/model to the model repo `repo` and DIR/dataset to the dataset repo `repo`."""
    from huggingface_hub import HfApi

    token = hub_token(repo)
    api = HfApi(token=token)
    urls = {}
    for kind, folder in (("model", "model"), ("dataset", "dataset")):
        api.create_repo(repo, repo_type=kind, private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(Path(to_dir) / folder),
            repo_id=repo,
            repo_type=kind,
            commit_message=f"selftaught export ({kind})",
        )
        urls[kind] = str(getattr(info, "repo_url", None) or info)
    return urls


# --- the CLI -----------------------------------------------------------------------------


def add_arguments(parser) -> None:
    """`selftaught export`'s arguments (--config only when the parser has none yet)."""
    if "--config" not in parser._option_string_actions:
        from pipelines.build import DEFAULT_CONFIG

        parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="experiment YAML (default: the demo)")
    parser.add_argument("round", help="the round to export (r002)")
    parser.add_argument("--to", required=True, metavar="DIR", help="folder to write (dataset/ and model/)")
    parser.add_argument("--force", action="store_true", help="replace DIR when it exists and is not empty")
    parser.add_argument(
        "--push-to-hub",
        default=None,
        metavar="REPO",
        help="then upload: the model repo REPO and the dataset repo REPO (needs HF_TOKEN)",
    )
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repos private")


def run(args) -> int:
    from selftaught.config import load_config
    from selftaught.lock import check_root_owner

    repo = getattr(args, "push_to_hub", None)
    try:
        if repo:
            hub_token(repo)  # fail before the export, not after it
        cfg = load_config(args.config)
        store = Store.for_config(cfg)
        check_root_owner(store, cfg.name)
        out = export_round(
            cfg, store, args.round, args.to, force=getattr(args, "force", False), config_path=args.config, repo=repo
        )
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for w in out["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    d, m = out["dataset"], out["model"]
    print(f"round {out['round']} exported to {out['to']}")
    print(f"  dataset {d['path']}: " + ", ".join(f"{name} {n} rows" for name, n in d["tables"].items()))
    print(
        f"  model   {m['path']}: weights {m['weights_hash']}" + (", LoRA adapter in adapter/" if m["adapter"] else "")
    )
    if repo:
        urls = push_to_hub(out["to"], repo, private=getattr(args, "private", False))
        print("  pushed: " + ", ".join(f"{kind} {url}" for kind, url in urls.items()))
    return 0
