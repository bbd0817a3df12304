"""The CLI as a user runs it (subprocesses), and `dagster dev` answering on 127.0.0.1."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import dagster as dg
import pytest

from tests.helpers import copy_config, start_ui

pytestmark = pytest.mark.slow


def selftaught(*args, home, timeout=600):
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    from tests.helpers import make_tiny_config

    folder = tmp_path_factory.mktemp("cli")
    config, home = make_tiny_config(folder), folder / "home"
    first = selftaught("run", "--config", str(config), "--rounds", "2", home=home)
    return config, home, first


def test_run_prints_the_round_table(cli_run):
    _, _, first = cli_run
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    assert "r001" in out and "r002" in out and "acc 1d" in out and "pass" in out
    assert "1-digit held-out accuracy:" in out


def test_lineage_of_a_round_and_of_a_training_row(cli_run):
    import polars as pl

    config, home, _ = cli_run
    out = selftaught("lineage", "r002", "--config", str(config), home=home)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    order = [
        "policy base:",
        "-> policy r001:",
        "-> samples r002:",
        "-> verdicts r002:",
        "-> training_set r002:",
        "-> policy r002:",
        "-> evaluation r002:",
    ]
    assert [next(i for i, line in enumerate(lines) if line.startswith(o)) for o in order] == list(range(len(order)))
    assert "written by r001" in lines[2] and "arithmetic@1" in lines[3]
    data_hash = lines[5].split("training data ")[1].split(",")[0]
    assert f"sha256 {data_hash}" in lines[4]  # the policy was trained on exactly this training_set file
    store = config.parent / "store"
    rows = pl.read_parquet(store / "tables" / "training_set" / "r002.parquet")
    row_id = rows.filter(pl.col("source_round") == "r001")["row_id"][0]
    row = selftaught("lineage", row_id, "--config", str(config), home=home)
    assert row.returncode == 0 and "written in round r001 by policy base" in row.stdout
    assert "in the training sets of r001, r002" in row.stdout
    missing = selftaught("lineage", "r009", "--config", str(config), home=home)
    assert missing.returncode == 2 and "round r009 does not exist" in missing.stderr and "r001, r002" in missing.stderr
    # The cross-round summary asset ran after the rounds: its table and plot are on disk.
    assert (store / "summary.png").read_bytes()[:4] == b"\x89PNG"
    summary = pl.read_parquet(store / "tables" / "summary" / "all.parquet")
    assert summary["round"].to_list() == ["base", "r001", "r002"] and "distinct_answers" in summary.columns


def test_two_experiments_share_one_instance_without_mixing(cli_run, tmp_path):
    """Asset keys carry the experiment's prefix: another experiment's r001 is not this one's."""
    config, home, first = cli_run
    assert first.returncode == 0
    other = copy_config(config, tmp_path / "other.yaml", name="tiny-b", storage_root=str(tmp_path / "store-b"))
    run = selftaught("run", "--config", str(other), "--rounds", "1", home=home)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "r001: running ..." in run.stdout and "already complete" not in run.stdout
    assert (tmp_path / "store-b" / "tables" / "samples" / "r001.parquet").is_file()
    mine = selftaught("status", "--config", str(other), home=home).stdout
    theirs = selftaught("status", "--config", str(config), home=home).stdout
    assert " r001 " in mine and " r002 " not in mine
    assert " r001 " in theirs and " r002 " in theirs


def test_rerun_is_idempotent_and_a_partial_round_resumes(cli_run):
    config, home, _ = cli_run
    again = selftaught("run", "--config", str(config), "--rounds", "2", home=home)
    assert again.returncode == 0 and again.stdout.count("already complete") == 2
    # Materialize only the first stages of r003, as a crash after sampling would leave it.
    os.environ["DAGSTER_HOME"] = str(home)
    from pipelines.build import build_definitions
    from pipelines.keys import asset_key

    defs = build_definitions(config)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("rounds", ["r003"])
        part = defs.resolve_job_def("round").execute_in_process(
            instance=instance,
            partition_key="r003",
            asset_selection=[asset_key("tiny", n) for n in ("prompts", "sampling_plan", "samples")],
        )
        assert part.success
    resumed = selftaught("run", "--config", str(config), "--rounds", "3", home=home)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "r003: running (resuming from verdicts)" in resumed.stdout
    status = selftaught("status", "--config", str(config), home=home)
    assert status.returncode == 0 and "r003" in status.stdout


def test_bad_config_is_one_clear_error(tmp_path, tiny_config):
    bad = copy_config(tiny_config, tmp_path / "bad.yaml", sampling__temprature=0.5)
    res = selftaught("run", "--config", str(bad), home=tmp_path / "home", timeout=120)
    assert res.returncode == 2
    assert "sampling.temprature: unknown key" in res.stderr and "Traceback" not in res.stderr


def _graphql(port, query):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_dagster_dev_serves_the_rounds_on_loopback(cli_run):
    config, home, _ = cli_run

    def ignore_stop_signals():  # as a script or supervisor may start it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc, url = start_ui(config, {**os.environ, "DAGSTER_HOME": str(home)}, preexec_fn=ignore_stop_signals)
    port = int(url.rsplit(":", 1)[1])
    try:
        nodes = _graphql(port, "{ assetNodes { assetKey { path } } }")["data"]["assetNodes"]
        paths = {tuple(n["assetKey"]["path"]) for n in nodes}
        assert {
            ("tiny", a) for a in ("base_model", "samples", "verdicts", "training_set", "policy", "evaluation")
        } <= paths
        q = '{ assetNodeOrError(assetKey: {path: ["tiny", "evaluation"]}) { ... on AssetNode { partitionKeys } } }'
        keys = _graphql(port, q)["data"]["assetNodeOrError"]["partitionKeys"]
        assert {"r001", "r002"} <= set(keys)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
            stopped_by_sigterm = True
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            stopped_by_sigterm = False
    assert stopped_by_sigterm, "dagster dev ignored SIGTERM"


def test_a_backfill_of_two_rounds_never_runs_them_at_once(tmp_path):
    """Backfill r001 and r002 through `dagster dev` (daemon + queued run coordinator): the
    dagster.yaml limit of one run per experiment makes them run one after the other."""
    from tests.helpers import make_tiny_config

    config, home = make_tiny_config(tmp_path), tmp_path / "home"
    os.environ["DAGSTER_HOME"] = str(home)
    from pipelines.build import build_definitions
    from pipelines.instance import dagster_home

    dagster_home(str(home))
    defs = build_definitions(config)
    with dg.DagsterInstance.get() as instance:
        assert defs.resolve_job_def("setup").execute_in_process(instance=instance).success
        instance.add_dynamic_partitions("rounds", ["r001", "r002"])
    proc, url = start_ui(config, {**os.environ, "DAGSTER_HOME": str(home)})
    port = int(url.rsplit(":", 1)[1])
    try:
        launched = _graphql(
            port,
            """mutation { launchPartitionBackfill(backfillParams: {
            selector: {partitionSetName: "round_partition_set",
                       repositorySelector: {repositoryName: "__repository__",
                                            repositoryLocationName: "pipelines.definitions"}},
            partitionNames: ["r001", "r002"], fromFailure: false}) {
              __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        )
        assert launched["data"]["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", launched
        deadline = time.monotonic() + 420
        with dg.DagsterInstance.get() as instance:
            while True:
                runs = instance.get_run_records(dg.RunsFilter(job_name="round"))
                finished = [r for r in runs if r.dagster_run.is_finished]
                if len(finished) == 2:
                    break
                assert time.monotonic() < deadline, f"runs did not finish: {[r.dagster_run.status for r in runs]}"
                time.sleep(2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    spans = sorted(
        (r.start_time, r.end_time, r.dagster_run.tags.get("dagster/partition"), r.dagster_run.status) for r in finished
    )
    assert spans[0][1] <= spans[1][0], f"the two rounds overlapped: {spans}"
    by_key = {key: status for _, _, key, status in spans}
    assert by_key["r001"] == dg.DagsterRunStatus.SUCCESS
    # r002 either ran after r001 (success) or, queued first, was refused by the parent guard.
    assert by_key["r002"] in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
