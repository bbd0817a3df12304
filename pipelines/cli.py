"""`selftaught`: run rounds, show their table, validate a config, share a round.

    selftaught run [--config FILE] [--rounds N]   run until N rounds are complete
    selftaught status [--config FILE]             the per-round table
    selftaught runs                               every experiment of the Dagster instance
    selftaught ui [--config FILE] [--port P]      the Dagster UI on 127.0.0.1
    selftaught validate [--config FILE] [--show]  check a config, print a round's size (or the whole config)
    selftaught lineage TARGET                     the chain behind a round or a training row
    selftaught diff [A] B                         what round B changed against A (default: the round before)
    selftaught ledger                             what each round cost and what it gained
    selftaught export ROUND --to DIR              the round's tables and policy, with cards
    selftaught plugins [--config FILE]            every task, verifier and objective: origin, capabilities
    selftaught new NAME                           a project for your own data and checker

Every command that takes --config also takes `--set key.path=value` (repeatable), validated
like the file: the overrides are written as a config that extends the file
(<DAGSTER_HOME>/configs/), so the UI, schedules and later runs read the same settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def quiet_libraries() -> None:
    """Progress goes to our loggers; silence library progress bars and warnings."""
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", category=UserWarning, module="(transformers|trl|peft|torch)")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("selftaught").setLevel(logging.INFO)


def cmd_run(args) -> int:
    from pipelines.run import run_experiment

    return run_experiment(args.config, args.rounds, args.dagster_home, args.debug, not args.no_progress)


def _experiment_store(cfg):
    """The store of `cfg` for a command that reads it: RootTaken when the root is another experiment's."""
    from selftaught.lock import check_root_owner
    from selftaught.store import Store

    store = Store.for_config(cfg)
    check_root_owner(store, cfg.name)
    return store


def cmd_status(args) -> int:
    from filters.summary import round_rows
    from pipelines.instance import get_instance
    from pipelines.round_table import experiment_summary, format_table
    from selftaught.config import load_config
    from selftaught.round_keys import is_round_key, round_index

    cfg = load_config(args.config)
    store = _experiment_store(cfg)
    instance = get_instance(args.dagster_home)
    from assets.parent import latest_materialization
    from pipelines.keys import asset_key
    from pipelines.run import wall_seconds

    # The rounds partitions are shared by every experiment on this instance: keep this one's.
    # Keys that are not r001, r002, ... (added by hand in the UI) are not rounds: skip them.
    keys = sorted(
        (
            k
            for k in instance.get_dynamic_partitions("rounds")
            if is_round_key(k) and latest_materialization(instance, asset_key(cfg.name, "prompts"), k)
        ),
        key=round_index,
    )
    wall = {k: wall_seconds(instance, cfg.name, k) for k in keys}
    rows = round_rows(store, keys, wall)
    print(format_table(rows))
    summary = experiment_summary(cfg, rows)
    if summary:
        print(summary)
    return 0


def cmd_ui(args) -> int:
    """exec `dagster dev` on 127.0.0.1 for this experiment, on the shared instance."""
    import shutil
    import signal

    from pipelines.instance import dagster_home
    from selftaught.config import load_config

    if os.path.isdir(args.config):  # a folder: every experiment in it, side by side
        from pipelines.build import build_folder_definitions

        build_folder_definitions(args.config)
    else:
        load_config(args.config)  # a bad config is reported here, not as a code-location error in the UI
    dagster_home(args.dagster_home)
    os.environ["SELFTAUGHT_CONFIG"] = os.path.abspath(args.config)
    # A shell script or supervisor may start us with SIGINT/SIGTERM ignored; the
    # ignore survives exec and `dagster dev` could then not be stopped.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    exe = shutil.which("dagster", path=os.path.dirname(sys.executable)) or shutil.which("dagster")
    if exe is None:
        print("error: the dagster command is not installed in this environment", file=sys.stderr)
        return 2
    argv = [exe, "dev", "-m", "pipelines.definitions", "-h", "127.0.0.1", "-p", str(args.port)]
    print(
        f"Dagster UI for {args.config} on http://127.0.0.1:{args.port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})",
        flush=True,
    )
    os.execv(exe, argv)


def cmd_lineage(args) -> int:
    from pipelines.lineage import LineageError, round_chain, row_chain
    from selftaught.config import load_config

    store = _experiment_store(load_config(args.config))
    try:
        lines = row_chain(store, args.target) if "/" in args.target else round_chain(store, args.target)
    except LineageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def cmd_diff(args) -> int:
    from filters.diff import diff_rounds
    from selftaught.config import load_config
    from selftaught.round_keys import is_round_key, parent_key

    store = _experiment_store(load_config(args.config))
    rounds = [r for r in args.rounds if r != "base"]
    bad = [r for r in rounds if not is_round_key(r)]
    if bad or len(args.rounds) not in (1, 2):
        print(f"error: expected one or two rounds (r002, or base r003), got {' '.join(args.rounds)}", file=sys.stderr)
        return 2
    against, key = args.rounds if len(args.rounds) == 2 else (parent_key(args.rounds[0]) or "base", args.rounds[0])
    try:
        diff = diff_rounds(store, against, key)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{key} against {against}\n")
    print(diff.text())
    return 0


def cmd_ledger(args) -> int:
    from assets.rounds import ROUND_ASSETS
    from assets.stage_costs import experiment_costs
    from filters.ledger import format_ledger, ledger_table
    from pipelines.keys import key_prefix
    from selftaught.config import load_config

    cfg = load_config(args.config)
    rounds = experiment_costs(get_instance_for(args), key_prefix(cfg.name), [a.key.path[-1] for a in ROUND_ASSETS])
    if not rounds:
        print(f"experiment {cfg.name}: no evaluated round on this Dagster instance yet")
        return 0
    print(format_ledger(ledger_table(rounds, cfg.operations.price_per_hour)))
    return 0


def cmd_compare(args) -> int:
    """Experiments side by side, per round: accuracy (and control), samples, kept rows, tokens, seconds."""
    from filters.compare import compare_table, format_compare
    from selftaught.config import ConfigError, load_config

    if len(args.configs) < 2:
        print("error: compare needs two or more experiment configs (selftaught compare A.yaml B.yaml)", file=sys.stderr)
        return 2
    stores = {}
    for path in args.configs:
        cfg = load_config(path)
        if cfg.name in stores:
            raise ConfigError(f"{path}: experiment {cfg.name!r} is named twice; compare different experiments")
        store = _experiment_store(cfg)
        if not store.partitions("prompts"):
            print(f"warning: experiment {cfg.name} has no round at {store.location()} yet", file=sys.stderr)
        stores[cfg.name] = store
    print(format_compare(compare_table(stores)))
    return 0


def cmd_validate(args) -> int:
    from selftaught.config import load_config

    cfg = load_config(args.config)
    if args.round is not None:
        if args.round > cfg.max_rounds:
            print(f"error: --round {args.round}: the experiment has {cfg.max_rounds} rounds", file=sys.stderr)
            return 2
        label = cfg.phase_label(args.round)
        print(
            f"# round {args.round}"
            + (f", phase {label}" if label else "")
            + f": round hash {cfg.for_round(args.round).round_hash()}"
        )
        cfg = cfg.for_round(args.round)
    if args.show:  # the whole config: extends applied, defaults filled in
        import yaml

        def plain(v):  # tuples as lists, for YAML
            return (
                [plain(x) for x in v]
                if isinstance(v, (list, tuple))
                else {k: plain(x) for k, x in v.items()}
                if isinstance(v, dict)
                else v
            )

        print(yaml.safe_dump(plain(cfg.model_dump()), sort_keys=False, default_flow_style=None, width=110), end="")
        return 0
    size = cfg.round_size()
    print(f"ok: experiment {cfg.name!r}, {cfg.max_rounds} rounds, storage {cfg.storage_root}")
    print(
        f"each round: up to {size['prompts']:,} prompts x {size['samples_per_prompt']:,} samples = "
        f"{size['samples']:,} completions (at most {size['new_tokens']:,} new tokens), "
        f"{size['steps_first_round']:,} training steps in round 1"
        + (
            f" growing to {size['steps_last_round']:,} in round {cfg.max_rounds}"
            if size["steps_last_round"] != size["steps_first_round"]
            else ""
        )
        + f", {size['eval_prompts']:,} held-out prompts evaluated"
    )
    print("plugins: " + "; ".join(f"{role} {p.name} ({p.origin.short()})" for role, p in cfg.plugins().items()))
    for i, phase in enumerate(cfg.phases):
        first = phase.span()[0]
        staged = cfg.for_round(first)
        print(
            f"phase {cfg.phase_name(i)} ({phase.describe()}): objective {staged.training.objective}, "
            f"{staged.training.steps_for(first):,} training steps in round {first}, round hash {staged.round_hash()} "
            f"(validate --show --round {first} prints its config)"
        )
    return 0


def cmd_plugins(args) -> int:
    from pipelines.plugin_list import plugin_listing
    from selftaught.config import load_config

    print(plugin_listing(load_config(args.config) if args.config else None))
    return 0


def cmd_new(args) -> int:
    from pipelines.scaffold import ScaffoldError, new_project

    try:
        target = new_project(args.name, args.dir)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = target / "config.yaml"
    print(
        f"created {target}/: config.yaml, {target.name.lower().replace('-', '_')}_checks.py (the verifier), "
        "data/ (16 train rows, 4 held out), tests/, pyproject.toml, README.md"
    )
    print(
        f"next:\n  selftaught run --config {config} --rounds 1\n  python -m pytest {target}/tests\n"
        f"  selftaught plugins --config {config}"
    )
    return 0


def cmd_runs(args) -> int:
    """Every experiment this Dagster instance has evaluated rounds of: last round, frontier accuracy."""
    from pipelines.experiments import experiments_table

    print(experiments_table(get_instance_for(args)))
    return 0


def get_instance_for(args):
    from pipelines.instance import get_instance

    return get_instance(args.dagster_home)


def _setting(text: str) -> str:
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise argparse.ArgumentTypeError(f"expected key.path=value (e.g. training.max_steps=50), got {text!r}")
    return text


def _apply_settings(args) -> None:
    """--set overrides: a config extending --config, in the instance's configs/ folder."""
    if not getattr(args, "set", None):
        return
    from pipelines.instance import dagster_home
    from selftaught.config import with_overrides

    args.config = str(with_overrides(args.config, args.set, dagster_home(args.dagster_home) / "configs"))
    print(f"config with --set overrides: {args.config}", file=sys.stderr, flush=True)


def _round_count(text: str) -> int:
    from selftaught.config.limits import MAX_ROUNDS

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_ROUNDS:
        raise argparse.ArgumentTypeError(f"must be 1..{MAX_ROUNDS:,}, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """`selftaught`'s argument parser (every command but `serve`, which has its own:
    synth.serve.build_parser). The CLI reference in the docs is generated from it."""
    from pipelines.build import DEFAULT_CONFIG

    parser = argparse.ArgumentParser(
        prog="selftaught",
        description="Iterative self-training rounds on Dagster.",
        epilog="selftaught serve --model DIR [--port 8000]: an OpenAI-compatible completions server for a local model",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    from pipelines import export

    for name, fn, help_ in [
        ("run", cmd_run, "run rounds until --rounds are complete (resumes)"),
        ("status", cmd_status, "print the per-round table"),
        ("runs", cmd_runs, "every experiment of the Dagster instance: last round, frontier accuracy"),
        ("ui", cmd_ui, "open the Dagster UI on 127.0.0.1 for this experiment (or a folder of them)"),
        ("lineage", cmd_lineage, "the chain behind a round (r002) or a training row id"),
        ("diff", cmd_diff, "what a round changed against the one before (or any other)"),
        ("ledger", cmd_ledger, "what each round cost (seconds, memory, tokens) and gained"),
        ("compare", cmd_compare, "experiments side by side per round: accuracy, control, kept rows, tokens, seconds"),
        ("validate", cmd_validate, "validate an experiment config"),
        ("export", export.run, "write a round's tables as a Hugging Face dataset and its policy with a model card"),
        (
            "plugins",
            cmd_plugins,
            "every task, verifier and training objective: origin and capabilities (with --config: the ones it uses)",
        ),
        ("new", cmd_new, "create a project folder for your own task and checker"),
    ]:
        p = sub.add_parser(name, help=help_)
        if name == "new":
            p.add_argument("name", help="the project's name (letters, digits, - and _)")
            p.add_argument("--dir", default=".", help="the folder to create it in (default: here)")
            p.set_defaults(fn=fn)
            continue
        if name == "compare":
            p.add_argument("configs", nargs="+", metavar="CONFIG", help="two or more experiment YAMLs")
            p.set_defaults(fn=fn)
            continue
        p.add_argument(
            "--dagster-home", default=None, help="Dagster instance dir (default $DAGSTER_HOME or data/dagster_home)"
        )
        if name == "plugins":
            p.add_argument("--config", default=None, help="also list the user code this experiment YAML names")
        elif name != "runs":
            p.add_argument("--config", default=str(DEFAULT_CONFIG), help="experiment YAML (default: the demo)")
            p.add_argument(
                "--set",
                action="append",
                type=_setting,
                metavar="KEY=VALUE",
                default=[],
                help="override a config key, e.g. --set training.max_steps=50 (YAML value; repeatable)",
            )
        if name == "export":
            export.add_arguments(p)
        if name == "run":
            p.add_argument(
                "--rounds", type=_round_count, default=None, help="rounds to complete, 1 or more (default: max_rounds)"
            )
            p.add_argument("--no-progress", action="store_true", help="plain progress lines even on a terminal")
            p.add_argument(
                "--debug",
                action="store_true",
                help="print Dagster's log with each failed step's "
                "traceback (default: one line naming the cause, the traceback in a log file)",
            )
        if name == "validate":
            p.add_argument(
                "--show",
                action="store_true",
                help="print the whole resolved config (extends applied, defaults filled in)",
            )
            p.add_argument(
                "--round",
                type=_round_count,
                default=None,
                metavar="N",
                help="the config round N runs (its phase's, when `phases` covers it)",
            )
        if name == "ui":
            p.add_argument("--port", type=int, default=3000, help="port of the UI on 127.0.0.1")
        if name == "diff":
            p.add_argument(
                "rounds", nargs="+", metavar="ROUND", help="B (against the round before it), or A B (A may be base)"
            )
        if name == "lineage":
            p.add_argument("target", help="a round key (r002) or a training row id (r002/<prompt_id>/<sample_idx>)")
        p.set_defaults(fn=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # its own argument parser: python -m synth.serve --help
        from synth.serve import main as serve

        return serve(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_libraries()
    from selftaught.config import ConfigError
    from selftaught.files import TableError
    from selftaught.lock import ExperimentBusy, RootTaken

    try:
        _apply_settings(args)
        return args.fn(args)
    except (ConfigError, RootTaken) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ExperimentBusy, TableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
