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
import re
import sys
import time
from pathlib import Path


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


def _wall_seconds(instance, experiment: str, key: str) -> float:
    from assets.parent import latest_materialization
    from pipelines.keys import asset_key
    from pipelines.progress import ROUND_ORDER

    runs = {rec.run_id for n in ROUND_ORDER if (rec := latest_materialization(instance, asset_key(experiment, n), key))}
    total = 0.0
    for run_id in runs:
        record = instance.get_run_record_by_id(run_id)
        if record and record.start_time and record.end_time:
            total += record.end_time - record.start_time
    return total


def _root_error(error):
    while error.cause is not None:  # Dagster wraps the step's own error: the root cause is at the bottom
        error = error.cause
    return error


def _step_errors(result) -> list:
    """(step key, error) of each step that raised; a step stopped by a failed blocking check is not one."""
    return [
        (e.step_key, e.step_failure_data.error)
        for e in result.all_events
        if e.is_step_failure
        and e.step_failure_data.error is not None
        and _root_error(e.step_failure_data.error).cls_name != "DagsterAssetCheckFailedError"
    ]


def _failure(result) -> str:
    """The one line about a failed run that names its cause. A step that raised is the cause
    (its root exception, not Dagster's wrapper); a step stopped by a blocking check that
    failed at ERROR severity names that check. A check that only warned never stands in for
    an error: it is in the UI with the rest."""
    for step, error in _step_errors(result):
        return f"{step}: {_root_error(error).message.strip()}"
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            d = event.event_specific_data
            if not d.passed and d.severity.value == "ERROR":
                reasons = d.metadata.get("top_reasons")
                top = f"; top reasons: {reasons.value}" if reasons is not None else ""
                return f"blocking check {d.check_name} on {d.asset_key.to_user_string()} failed: {d.description}{top}"
    return "the run failed; see the Dagster UI (selftaught ui) for its logs"


def _report_failure(what: str, result, debug: bool, experiment: str, log_name: str) -> None:
    """Print `<what> failed: <cause>` as the last line of stderr. The tracebacks go to a log
    file under DAGSTER_HOME/logs (printed above the line only with --debug)."""
    tracebacks = [f"step {step}:\n{error.to_string()}" for step, error in _step_errors(result)]
    where = ""
    if tracebacks and not debug:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{experiment}-{log_name}-{result.run_id[:8]}")
        log = Path(os.environ["DAGSTER_HOME"]) / "logs" / f"{name}.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("\n\n".join(tracebacks))
            where = f" [traceback: {log}; or rerun with --debug]"
        except OSError:  # a full disk may be the failure itself: the line must still come out
            where = " [rerun with --debug for the traceback]"
    print(f"{what} failed: {_failure(result)}{where}", file=sys.stderr, flush=True)


def _run_config(debug: bool) -> dict:
    """Dagster's console logger prints each failed step's traceback chain at ERROR: only with --debug."""
    return {"loggers": {"console": {"config": {"log_level": "DEBUG" if debug else "CRITICAL"}}}}


def _fail_dead_cli_runs(instance, experiment: str) -> None:
    """Runs of a `selftaught run` that was killed stay "started" in Dagster's records; the
    caller holds the experiment's lock, so no CLI of it is alive: mark them failed."""
    import dagster as dg

    from pipelines.keys import CLI_TAG, EXPERIMENT_TAG

    for run in instance.get_runs(
        filters=dg.RunsFilter(
            tags={EXPERIMENT_TAG: experiment},
            statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.NOT_STARTED],
        )
    ):
        if CLI_TAG in run.tags:
            instance.report_run_failed(run, f"the selftaught run process {run.tags[CLI_TAG]} is gone (killed)")


def cmd_run(args) -> int:
    import socket

    from assets.resources import CLI_TAG, earlier_active_run, experiment_config
    from filters.summary import round_rows
    from pipelines import progress
    from pipelines.build import build_definitions
    from pipelines.instance import dagster_home, get_instance
    from pipelines.keys import asset_key
    from pipelines.round_table import experiment_summary, format_table
    from selftaught.lock import ExperimentLock, claim_key_prefix, claim_root
    from selftaught.round_keys import round_key
    from selftaught.store import Store

    cfg = experiment_config(args.config)  # parsed once: build_definitions reads the same
    target = args.rounds or cfg.max_rounds
    from selftaught.config.limits import MAX_STEPS

    try:
        last_steps = cfg.training.steps_for(target)
    except OverflowError:
        last_steps = float("inf")
    if last_steps > MAX_STEPS:
        print(
            f"error: --rounds {target}: round {target} would train more than {MAX_STEPS:,} steps, the limit "
            f"(training.max_steps {cfg.training.max_steps} x steps_growth {cfg.training.steps_growth:g}^"
            f"{target - 1})",
            file=sys.stderr,
        )
        return 2
    if sys.stderr.isatty() and not args.no_progress:
        from pipelines.progress_bars import show_progress_bars

        show_progress_bars()
    defs = build_definitions(args.config)
    store = Store.for_config(cfg)
    store.check_writable()
    claim_root(store, cfg.name)
    claim_key_prefix(dagster_home(args.dagster_home), cfg.name, store.location())
    lock = ExperimentLock(store.root, cfg.name)
    lock.acquire(f"selftaught run --config {args.config}")  # held until this process exits
    instance = get_instance(args.dagster_home)
    _fail_dead_cli_runs(instance, cfg.name)
    busy = earlier_active_run(instance, cfg.name, None)
    if busy:
        print(f"error: experiment {cfg.name}: {busy}", file=sys.stderr)
        return 1
    print(f"experiment {cfg.name}: storage {store.location()}, dagster home {os.environ['DAGSTER_HOME']}", flush=True)
    tags = {CLI_TAG: f"{os.getpid()}@{socket.gethostname()}"}

    t0 = time.monotonic()
    print("setup: warm-start examples, eval set, base model (cached when unchanged) ...", flush=True)
    run_config = _run_config(args.debug)
    result = defs.resolve_job_def("setup").execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False, tags=tags
    )
    if not result.success:
        _report_failure("setup", result, args.debug, cfg.name, "setup")
        return 1
    print(f"setup done in {time.monotonic() - t0:.0f}s", flush=True)

    round_job = defs.resolve_job_def("round")
    keys, wall = [], {}
    for i in range(1, target + 1):
        key = round_key(i)
        keys.append(key)
        if key not in instance.get_dynamic_partitions("rounds"):
            instance.add_dynamic_partitions("rounds", [key])
        lock.note(f"selftaught run --config {args.config}, round {key}")
        todo = progress.todo(instance, cfg, key, store, log=lambda m: print(m, flush=True))
        if not todo:
            print(f"{key}: already complete", flush=True)
        else:
            resumed = "" if todo == progress.ROUND_ORDER else f" (resuming from {todo[0]})"
            print(f"{key}: running{resumed} ...", flush=True)
            result = round_job.execute_in_process(
                instance=instance,
                partition_key=key,
                run_config=run_config,
                raise_on_error=False,
                tags=tags,
                asset_selection=[asset_key(cfg.name, n) for n in todo],
            )
            if not result.success:
                _report_failure(key, result, args.debug, cfg.name, key)
                return 1
        wall[key] = _wall_seconds(instance, cfg.name, key)
        rows = round_rows(store, keys, wall)
        print(format_table(rows), flush=True)
    result = defs.resolve_job_def("refresh_summary").execute_in_process(
        instance=instance, run_config=run_config, raise_on_error=False, tags=tags
    )
    if not result.success:
        _report_failure("warning: the summary asset", result, args.debug, cfg.name, "summary")
    summary = experiment_summary(cfg, round_rows(store, keys, wall))
    print(
        f"\n{target} rounds complete; {time.monotonic() - t0:.0f}s in this invocation. "
        f"Plot: {store.where(store.root / 'summary.png')}; lineage: selftaught lineage {keys[-1]}"
    )
    if summary:
        print(summary)
    return 0


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
    wall = {k: _wall_seconds(instance, cfg.name, k) for k in keys}
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


def cmd_validate(args) -> int:
    from selftaught.config import load_config

    cfg = load_config(args.config)
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
