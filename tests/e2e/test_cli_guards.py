"""What the CLI (in a subprocess) checks and repairs: the size of a round and `validate --show`,
round counts, stray partition keys, a storage root that belongs to another experiment, two runs
of one experiment at once, a Dagster run in progress, damaged tables and changed weights of a
finished round."""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from selftaught.config import load_config
from selftaught.lock import ExperimentBusy, ExperimentLock, claim_root
from selftaught.store import Store
from tests.helpers import ROOT, fresh_dagster_home


def cli(*args, home, timeout=300):
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_validate_prints_the_size_of_a_round(tiny_config):
    res = cli("validate", "--config", str(tiny_config), home=tiny_config.parent / "home", timeout=120)
    assert res.returncode == 0, res.stderr
    assert (
        "each round: up to 20 prompts x 4 samples = 80 completions (at most 3,200 new tokens), 6 training "
        "steps in round 1, 16 held-out prompts evaluated" in res.stdout
    )


def test_read_commands_refuse_a_root_that_belongs_to_another_experiment(tmp_path, tiny_config):
    store = Store(Path(load_config(tiny_config).storage_root))
    claim_root(store, "someone-else")
    for command in (
        ["status"],
        ["lineage", "r001"],
        ["diff", "r001"],
        ["export", "r001", "--to", str(tmp_path / "out")],
    ):
        res = cli(*command, "--config", str(tiny_config), home=tmp_path / "home")
        assert res.returncode == 2, (command, res.stderr[-2000:])
        assert res.stderr.strip().endswith(
            "belongs to experiment 'someone-else', not 'tiny' (this config's name): "
            "pass that experiment's config, or fix storage_root"
        ), res.stderr
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_second_experiment_on_the_same_root(tmp_path, tiny_config):
    store = Store(Path(load_config(tiny_config).storage_root))
    claim_root(store, "someone-else")
    res = cli("run", "--config", str(tiny_config), home=tmp_path / "home")
    assert res.returncode == 2 and "belongs to experiment 'someone-else'" in res.stderr
    assert "Traceback" not in res.stderr


HOLDER = """
import sys, time
from selftaught.lock import ExperimentLock
ExperimentLock(sys.argv[1], "tiny").acquire("selftaught run --config tiny.yaml, round r002")
print("held", flush=True)
time.sleep(120)
"""


def test_two_runs_of_one_experiment_never_overlap_and_a_dead_holder_frees_the_lock(tmp_path, tiny_config):
    root = Path(load_config(tiny_config).storage_root)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        # The CLI: refused at once, naming the holder.
        res = cli("run", "--config", str(tiny_config), home=tmp_path / "home")
        assert res.returncode == 1, res.stderr
        assert (
            f"experiment tiny is already running: selftaught run --config tiny.yaml, round r002 (pid {holder.pid}"
            in res.stderr
            and "Traceback" not in res.stderr
        )
        # A run launched by Dagster (the UI, a schedule): its steps fail with the same message.
        from pipelines.build import build_definitions

        with fresh_dagster_home(tmp_path):
            defs = build_definitions(tiny_config)
            with dg.DagsterInstance.get() as instance:
                result = defs.resolve_job_def("setup").execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        assert "experiment tiny is already running" in str(result.all_events)
        lock = ExperimentLock(root, "tiny")
        assert lock.holder()["pid"] == holder.pid
        with pytest.raises(ExperimentBusy):
            lock.acquire("test")
    finally:
        holder.kill()
        holder.wait()
    # kill -9 leaves no stale lock: the kernel dropped it with the process.
    assert ExperimentLock(root, "tiny").holder() is None
    with ExperimentLock(root, "tiny").hold("test"):
        pass


def test_a_dagster_run_in_progress_holds_the_experiment_between_its_steps(tmp_path, tiny_config):
    """A UI run between two steps holds no lock but owns the experiment: the CLI refuses;
    a run left "started" by a killed `selftaught run` does not block (it is marked failed)."""
    from assets.resources import CLI_TAG, EXPERIMENT_TAG
    from pipelines.build import build_definitions

    with fresh_dagster_home(tmp_path) as home:
        defs = build_definitions(tiny_config)
        with dg.DagsterInstance.get() as instance:
            job = defs.resolve_job_def("setup")
            ui_run = instance.create_run_for_job(job, tags={EXPERIMENT_TAG: "tiny"})
            instance.handle_new_event(_started(ui_run))
            res = cli("run", "--config", str(tiny_config), "--rounds", "1", home=home)
            assert res.returncode == 1
            assert f"round (setup) is already running in Dagster run {ui_run.run_id[:8]}" in res.stderr
            instance.report_run_canceled(ui_run)
            dead = instance.create_run_for_job(job, tags={EXPERIMENT_TAG: "tiny", CLI_TAG: "1@gone"})
            instance.handle_new_event(_started(dead))
            from pipelines.run import fail_dead_cli_runs

            fail_dead_cli_runs(instance, "tiny")
            assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE


def _started(run):
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.events.log import EventLogEntry

    event = DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name)
    return EventLogEntry(
        error_info=None, level=20, user_message="", run_id=run.run_id, timestamp=time.time(), dagster_event=event
    )


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "must be 1..10,000, got 0"),
        ("-1", "must be 1..10,000, got -1"),
        ("two", "expected a whole number, got 'two'"),
    ],
)
def test_round_counts_below_one_are_usage_errors(tmp_path, tiny_config, value, message):
    res = cli("run", "--config", str(tiny_config), "--rounds", value, home=tmp_path / "home", timeout=60)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr


def test_a_stray_partition_key_does_not_break_status(tmp_path, tiny_config):
    with fresh_dagster_home(tmp_path) as home:
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("rounds", ["r01", "test", "r000"])
        res = cli("status", "--config", str(tiny_config), home=home, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_damaged_tables_and_changed_weights_are_named_and_redone(tmp_path, tiny_config):
    home = tmp_path / "home"
    first = cli("run", "--config", str(tiny_config), "--rounds", "1", home=home, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    store = Path(load_config(tiny_config).storage_root)
    verdicts = store / "tables" / "verdicts" / "r001.parquet"
    whole = pl.read_parquet(verdicts)
    verdicts.write_bytes(verdicts.read_bytes()[:-100])  # truncated after the round finished
    status = cli("status", "--config", str(tiny_config), home=home, timeout=120)
    assert status.returncode == 1 and f"table {verdicts} is damaged" in status.stderr
    assert "Traceback" not in status.stderr
    again = cli("run", "--config", str(tiny_config), "--rounds", "1", home=home, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"r001: table {verdicts} is unreadable" in again.stdout and "rematerializing from verdicts" in again.stdout
    assert pl.read_parquet(verdicts).equals(whole)  # redone to the same rows
    # Weights changed after the round wrote them. The last round: run retrains them (same seeds,
    # same bytes). With a later round built on them: lineage shows it, run refuses in one line.
    weights = store / "models" / "r001" / "model" / "model.safetensors"
    original = weights.read_bytes()
    data = bytearray(original)
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    redo = cli("run", "--config", str(tiny_config), "--rounds", "1", home=home, timeout=600)
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert "r001: the weights in" in redo.stdout and "rematerializing from policy" in redo.stdout, redo.stdout
    assert weights.read_bytes() == original
    assert cli("run", "--config", str(tiny_config), "--rounds", "2", home=home, timeout=600).returncode == 0
    weights.write_bytes(bytes(data))
    lineage = cli("lineage", "r002", "--config", str(tiny_config), home=home, timeout=120)
    assert lineage.returncode == 0 and "policy r001: weights" in lineage.stdout
    assert "CHANGED ON DISK (" in lineage.stdout and "(verified on disk)" in lineage.stdout, lineage.stdout
    refused = cli("run", "--config", str(tiny_config), "--rounds", "2", home=home, timeout=600)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "Round r002 was built from them: restore the files (a `selftaught export` copy holds them), or remove "
            f"{store / 'models' / 'r001'} and the rounds after it to redo them"
        )
    ), refused.stderr[-2000:]
    weights.write_bytes(original)
    assert "r002: already complete" in cli("run", "--config", str(tiny_config), "--rounds", "2", home=home).stdout


def test_validate_show_prints_a_config_that_loads_back_the_same(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", "--config", "pipelines/presets/bstar.yaml", "--show"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "whole.yaml").write_text(out)
    assert load_config(tmp_path / "whole.yaml") == load_config(Path("pipelines/presets/bstar.yaml"))
