"""What outside probes got through (issue 15), one test per class: non-finite and
unbounded config values, duplicate YAML keys, an empty or shared storage root, two runs
of one experiment at once, a diverging training run, stray partition keys and round
counts, temp files left by killed writes, and file modes that ignore the umask."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from selftaught.config import ConfigError, load_config, parse_config
from selftaught.files import write_parquet_atomic
from selftaught.lock import ExperimentBusy, ExperimentLock, RootTaken, claim_root
from selftaught.store import Store
from tests.helpers import fresh_dagster_home

ROOT = Path(__file__).resolve().parent.parent


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


# ---- silent wrong results -------------------------------------------------------------------


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("training", "learning_rate", float("inf")),
        ("sampling", "temperature", float("nan")),
        ("training", "steps_growth", float("inf")),
        ("verification", "judge", {"threshold": float("-inf")}),
    ],
)
def test_non_finite_numbers_are_config_errors(section, key, value):
    with pytest.raises(ConfigError, match="finite number"):
        parse_config({section: {key: value}})


def test_yaml_inf_in_a_file_names_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learning_rate: .inf\n")
    with pytest.raises(ConfigError, match=r"training.learning_rate: Input should be a finite number \(got inf\)"):
        load_config(path)


def test_duplicate_keys_name_the_key_and_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: a\nsampling:\n  n: 4\n  temperature: 0.5\n  n: 8\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'n' on lines 3 and 5"):
        load_config(path)
    path.write_text("sampling:\n  n: 4\ntraining:\n  max_steps: 3\nsampling:\n  n: 8\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'sampling' on lines 1 and 5"):
        load_config(path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"storage_root": ""}, "storage_root: Value error, must name a folder"),
        ({"storage_root": "   "}, "storage_root: Value error, must name a folder"),
        ({"task": {"pool": {3: 10**12}}}, "count for difficulty 3 must be 0..1,000,000"),
        ({"training": {"steps_growth": 1e300}}, "training.steps_growth: Input should be less than or equal to 10"),
        ({"sampling": {"n": 10**12}}, "sampling.n: Input should be less than or equal to 4096"),
        ({"training": {"max_steps": 10**9}}, "training.max_steps: Input should be less than or equal to 10000000"),
        (
            {"task": {"pool": {3: 1_000_000, 4: 1_000_000}}, "sampling": {"n": 64}},
            "a round would generate 128,000,000 samples",
        ),
        (
            {"training": {"max_steps": 5_000_000, "steps_growth": 3.0}, "max_rounds": 4},
            "round 4 would train 135,000,000 steps",
        ),
    ],
)
def test_unbounded_work_is_a_config_error(changes, message):
    with pytest.raises(ConfigError) as err:
        parse_config(changes)
    assert message in str(err.value)


def test_validate_prints_the_size_of_a_round(tiny_config):
    res = cli("validate", "--config", str(tiny_config), home=tiny_config.parent / "home", timeout=120)
    assert res.returncode == 0, res.stderr
    assert (
        "each round: up to 20 prompts x 4 samples = 80 completions (at most 3,200 new tokens), 6 training "
        "steps in round 1, 16 held-out prompts evaluated" in res.stdout
    )


def test_a_diverging_training_run_fails_and_saves_nothing(tiny_model_dir, tmp_path):
    from train.sft import SFTSettings, TrainingDiverged, train_sft

    rows = pl.DataFrame({"prompt": ["Q: 1+1=?\nA:"] * 8, "completion": [" 2"] * 8})
    out = tmp_path / "out"
    with pytest.raises(TrainingDiverged, match="diverged|non-finite weights"):
        train_sft(tiny_model_dir, rows, out, SFTSettings(max_steps=4, learning_rate=1e38, batch_size=4, save_every=2))
    assert not (out / "model").exists() and not (out / "checkpoints").exists()


# ---- one experiment per storage root, one writer at a time ------------------------------------


def test_a_storage_root_belongs_to_one_experiment(tmp_path):
    store = Store(tmp_path / "root")
    claim_root(store, "a")
    claim_root(store, "a")  # the owner again: fine
    with pytest.raises(RootTaken, match=r"belongs to experiment 'a'.*experiment 'b' would overwrite"):
        claim_root(store, "b")


def _claim(root, name, barrier, results):
    barrier.wait()
    try:
        claim_root(Store(root), name)
        results.put((name, "won"))
    except RootTaken:
        results.put((name, "refused"))


def test_two_experiments_claiming_a_fresh_root_at_once_one_wins(tmp_path):
    """The owner file is created in one step: of two processes released at the same instant,
    exactly one owns the root (an outside probe saw both succeed in 29 of 40 tries)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for trial in range(40):
        root = tmp_path / f"root{trial}"
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_claim, args=(root, name, barrier, results)) for name in ("a", "b")]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        outcome = sorted(results.get(timeout=5)[1] for _ in procs)
        assert outcome == ["refused", "won"], (trial, outcome)
        owner = json.loads((root / "experiment.json").read_text())["experiment"]
        assert owner in ("a", "b")


def test_one_asset_prefix_and_one_root_per_experiment_name_in_a_dagster_home(tmp_path):
    from selftaught.lock import claim_key_prefix

    home = tmp_path / "home"
    home.mkdir()
    claim_key_prefix(home, "conc_x", "/data/a")
    claim_key_prefix(home, "conc_x", "/data/a")  # again: fine
    with pytest.raises(RootTaken, match=r"experiments 'conc_x' and 'conc-x' would share the asset keys conc_x/"):
        claim_key_prefix(home, "conc-x", "/data/b")
    with pytest.raises(
        RootTaken,
        match=r"experiment 'conc_x' in the Dagster home .* keeps its data at /data/a; a "
        r"second 'conc_x' at /data/c",
    ):
        claim_key_prefix(home, "conc_x", "/data/c")
    claim_key_prefix(home, "other", "/data/c")


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
            from pipelines.cli import _fail_dead_cli_runs

            _fail_dead_cli_runs(instance, "tiny")
            assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE


def _started(run):
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.events.log import EventLogEntry

    event = DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name)
    return EventLogEntry(
        error_info=None, level=20, user_message="", run_id=run.run_id, timestamp=time.time(), dagster_event=event
    )


# ---- unclear errors -------------------------------------------------------------------------


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


# ---- files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_respect_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        path = tmp_path / "t" / "x.parquet"
        write_parquet_atomic(pl.DataFrame({"a": [1]}), path)
        Store(tmp_path / "s").write_file(b"{}", "provenance.json")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode
    assert (tmp_path / "s" / "provenance.json").stat().st_mode & 0o777 == mode


def test_temp_files_of_killed_writes_are_removed(tmp_path):
    from synth.backends import SamplingParams
    from synth.generate import GenerationJob, prepare

    out = tmp_path / "job"
    out.mkdir()
    (out / ".shard-00000.parquet.abc123.tmp").write_bytes(b"half a shard")
    job = GenerationJob(
        backend="hf",
        model_dir="m",
        params=SamplingParams(n=1),
        out_dir=str(out),
        round="r001",
        policy_id="base",
        policy_hash="h",
        shard_size=4,
    )
    prepare(job, pl.DataFrame({"prompt_id": ["a"], "prompt": ["x"]}))
    assert not list(out.glob("*.tmp"))
    table = tmp_path / "tables" / "t" / "r001.parquet"
    table.parent.mkdir(parents=True)
    (table.parent / ".r001.parquet.zz9.tmp").write_bytes(b"half a table")
    write_parquet_atomic(pl.DataFrame({"a": [1]}), table)
    assert not list(table.parent.glob("*.tmp")) and pl.read_parquet(table)["a"].to_list() == [1]


# ---- damaged files of a finished round --------------------------------------------------------


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


# ---- datasets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "bad_line.jsonl",
            b'{"question": "a", "answer": "1"}\n{"question": "b", answer: 2}\n',
            "line 2 is not valid JSON: Expecting property name enclosed in double quotes (column 19)",
        ),
        ("not_a_row.jsonl", b'{"question": "a", "answer": "1"}\n[1, 2]\n', "line 2 is a JSON list, not an object"),
        (
            "surrogate.jsonl",
            b'{"question": "a", "answer": "1"}\n{"question": "b\\ud800", "answer": "2"}\n',
            "line 2 holds a lone surrogate escape",
        ),
        ("nested.jsonl", b'{"question": {"text": "a"}, "answer": "1"}\n', "column 'question' (question) holds Struct"),
        (
            "listed.jsonl",
            b'{"question": ["a", "b"], "answer": "1"}\n',
            "column 'question' (question) holds List(String)",
        ),
        (
            "broken.json",
            b'[{"question": "a", "answer": "1"},\n {"question": "b" "answer": "2"}]',
            "line 2 is not valid JSON: Expecting ',' delimiter",
        ),
    ],
)
def test_bad_dataset_files_name_the_line_or_column(tmp_path, name, text, message):
    from synth.sources import Columns, SourceError, load_rows, read_source

    path = tmp_path / name
    path.write_bytes(text)
    with pytest.raises(SourceError) as err:
        load_rows(read_source(str(path)), Columns())
    assert message in str(err.value)


def test_a_utf8_bom_and_escaped_emoji_are_read_as_text(tmp_path):
    from synth.sources import Columns, load_rows, read_source

    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"question": "a \\ud83d\\ude00", "answer": "1"}\n')
    rows = load_rows(read_source(str(path)), Columns()).rows
    assert rows["question"].to_list() == ["a \U0001f600"] and rows["answer"].to_list() == ["1"]
    csv = tmp_path / "bom.csv"
    csv.write_bytes(b"\xef\xbb\xbfquestion,answer\nb,2\n")
    assert load_rows(read_source(str(csv)), Columns()).rows["question"].to_list() == ["b"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a 64 KiB tmpfs to fill")
def test_a_full_disk_is_named_in_words_and_leaves_no_temp_file(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        big = pl.DataFrame({"x": [float(i) * 1.1 for i in range(200_000)]})
        with pytest.raises(OSError, match=r"no space left on device writing .*/t/r001.parquet \(\d+\.\d MB free\)"):
            write_parquet_atomic(big, disk / "t" / "r001.parquet")
        with pytest.raises(OSError, match=r"no space left on device writing .*/provenance.json"):
            Store(disk).write_file(b"x" * 200_000, "provenance.json")
        assert not [p for p in disk.rglob("*") if p.is_file()]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_folder_of_experiments_on_one_storage_root_is_refused(tmp_path, tiny_config):
    from pipelines.build import build_folder_definitions
    from tests.helpers import copy_config

    folder = tmp_path / "experiments"
    folder.mkdir()
    copy_config(tiny_config, folder / "a.yaml", name="exp-a")
    copy_config(tiny_config, folder / "b.yaml", name="exp-b")  # the same storage_root
    with pytest.raises(ConfigError, match=r"experiment 'exp-b' has the storage_root of experiment 'exp_a'"):
        build_folder_definitions(folder)
