"""The CLI as a user runs it (subprocesses), and `dagster dev` answering on 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import dagster as dg
import pytest

from tests.conftest import copy_config

pytestmark = pytest.mark.slow


def selftaught(*args, home, timeout=600):
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    from tests.conftest import make_tiny_config

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


def test_rerun_is_idempotent_and_a_partial_round_resumes(cli_run):
    config, home, _ = cli_run
    again = selftaught("run", "--config", str(config), "--rounds", "2", home=home)
    assert again.returncode == 0 and again.stdout.count("already complete") == 2
    # Materialize only the first two stages of r003, as a crash after sampling would leave it.
    os.environ["DAGSTER_HOME"] = str(home)
    from pipelines.build import build_definitions

    defs = build_definitions(config)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("rounds", ["r003"])
        part = defs.resolve_job_def("round").execute_in_process(
            instance=instance, partition_key="r003", asset_selection=[dg.AssetKey("prompts"), dg.AssetKey("samples")])
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port, query):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_dagster_dev_serves_the_rounds_on_loopback(cli_run):
    config, home, _ = cli_run
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home)}

    def ignore_stop_signals():  # as a script or supervisor may start it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ui", "--config", str(config), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=ignore_stop_signals)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, "dagster dev exited early"
            assert time.monotonic() < deadline, "dagster dev did not answer within 120 s"
            time.sleep(1)
        nodes = _graphql(port, "{ assetNodes { assetKey { path } } }")["data"]["assetNodes"]
        names = {n["assetKey"]["path"][-1] for n in nodes}
        assert {"base_model", "samples", "verdicts", "training_set", "policy", "evaluation"} <= names
        q = '{ assetNodeOrError(assetKey: {path: ["evaluation"]}) { ... on AssetNode { partitionKeys } } }'
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
