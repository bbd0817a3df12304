"""Generation in subprocesses and against servers: a real generation subprocess killed mid-way
and resumed, shards split across processes, failing workers; the OpenAI-compatible backend
against a real server process on 127.0.0.1, and rounds with a teacher and a judge served that
way; LoRA rounds that stay one adapter on the base model."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from synth.backends import BackendError, HFBackend, OpenAIBackend, derive_seed
from synth.generate import JOB_FILE, prepare, run, run_isolated
from tests.helpers import GENERATION_PARAMS as PARAMS
from tests.helpers import ROOT
from tests.helpers import generation_job as _job
from tests.helpers import generation_prompts as _prompts


def _wait_for(predicate, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_killed_generation_subprocess_resumes_to_the_same_rows(tiny_model_dir, tmp_path):
    prompts = _prompts(48)
    params = dataclasses.replace(PARAMS, max_new_tokens=40)
    job = _job(tiny_model_dir, tmp_path / "killed", shard_size=4, params=params)
    n_shards = prepare(job, prompts)
    assert n_shards == 12
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "synth.generate", str(tmp_path / "killed" / JOB_FILE)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    done = lambda: len(list((tmp_path / "killed").glob("shard-*.parquet")))  # noqa: E731
    try:
        assert _wait_for(lambda: done() >= 2), "generation subprocess wrote no shards"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = done()
    assert 2 <= finished < n_shards, f"{finished} of {n_shards} shards written before the kill"

    lines = []
    resumed = run_isolated(job, prompts, lines.append)
    uninterrupted = run(_job(tiny_model_dir, tmp_path / "clean", shard_size=4, params=params), prompts)
    assert resumed.equals(uninterrupted)
    assert lines[0].startswith(f"generation: {finished} of {n_shards} shards already done")
    written = [line for line in lines if "written" in line]
    assert len(written) == n_shards - finished  # only the missing shards were generated again


def test_two_generation_processes_split_the_shards_and_write_the_same_rows(tiny_model_dir, tmp_path):
    prompts = _prompts(20)
    lines = []
    split = run_isolated(_job(tiny_model_dir, tmp_path / "dp"), prompts, lines.append, workers=2)
    alone = run(_job(tiny_model_dir, tmp_path / "one"), prompts)
    assert split.equals(alone)
    assert lines[0] == "generation: 5 shards over 2 processes"
    assert sorted(int(line.split()[2].split("/")[0]) for line in lines if "written" in line) == [1, 2, 3, 4, 5]


def test_a_failing_generation_worker_stops_the_others(tmp_path):
    job = _job(tmp_path / "no-such-model", tmp_path / "gen")
    with pytest.raises(RuntimeError, match="generation: error: .*no-such-model is not a loadable model"):
        run_isolated(job, _prompts(8), workers=2)


def test_failed_subprocess_reports_its_error(tmp_path):
    job = _job(tmp_path / "no-such-model", tmp_path / "gen")
    with pytest.raises(RuntimeError, match="exited with 1: generation: error: .*no-such-model is not a loadable model"):
        run_isolated(job, _prompts(4))


KEY_ENV, KEY = "SELFTAUGHT_TEST_API_KEY", "sk-test-not-a-real-key-0123456789"


class Server:
    def __init__(self, model_dir, *args):
        env = {**os.environ, "PYTHONPATH": str(ROOT), KEY_ENV: KEY}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "synth.serve",
                "--model",
                str(model_dir),
                "--name",
                "tiny",
                "--port",
                "0",
                "--api-key-env",
                KEY_ENV,
                *args,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("serving"):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line}{self.proc.stderr.read()}")
        self.url = line.split(" on ")[1].strip()

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def server(tiny_model_dir):
    servers = []

    def start(*args):
        servers.append(Server(tiny_model_dir, *args))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def test_openai_backend_matches_the_model_it_serves_and_retries(server, api_key, tiny_model_dir):
    srv = server("--fail-first", "3")  # 503, 429, 503 before the first real answer
    prompts = _prompts(6)["prompt"].to_list()
    client = OpenAIBackend(srv.url, "tiny", api_key_env=KEY_ENV, max_concurrency=3, backoff_seconds=0.01)
    got = client.generate(prompts, PARAMS)
    assert client.retries == 3
    direct = HFBackend(str(tiny_model_dir), batch_size=64)
    want = [
        direct.generate([p], dataclasses.replace(PARAMS, seed=derive_seed(PARAMS.seed, i)))[0]
        for i, p in enumerate(prompts)
    ]
    assert got == want


def test_openai_backend_errors_are_clear(server, api_key, monkeypatch):
    srv = server()
    prompts = ["1+1="]
    monkeypatch.setenv("WRONG_KEY", "sk-wrong")
    with pytest.raises(BackendError, match="401.*api_key_env"):
        OpenAIBackend(srv.url, "tiny", api_key_env="WRONG_KEY", backoff_seconds=0).generate(prompts, PARAMS)
    with pytest.raises(BackendError, match="NOT_SET_ANYWHERE.*not set"):
        OpenAIBackend(srv.url, "tiny", api_key_env="NOT_SET_ANYWHERE")
    with pytest.raises(BackendError, match="404.*not served"):
        OpenAIBackend(srv.url, "gpt-9", api_key_env=KEY_ENV).generate(prompts, PARAMS)
    slow = server("--delay", "3")
    with pytest.raises(BackendError, match="Timeout.*2 attempts"):
        OpenAIBackend(
            slow.url, "tiny", api_key_env=KEY_ENV, timeout_seconds=0.3, max_retries=1, backoff_seconds=0
        ).generate(prompts, PARAMS)
    with pytest.raises(BackendError, match="ConnectError|attempts"):
        OpenAIBackend("http://127.0.0.1:9", "tiny", max_retries=0).generate(prompts, PARAMS)


def test_openai_generation_job_never_stores_the_key(server, api_key, tmp_path):
    srv = server()
    options = {"base_url": srv.url, "model": "tiny", "api_key_env": KEY_ENV, "backoff_seconds": 0.01}
    job = _job(None, tmp_path / "gen", backend="openai", options=options)
    df = run_isolated(job, _prompts(6))
    assert df.height == 6 * PARAMS.n and set(df["backend"]) == {"openai"}
    for path in (tmp_path / "gen").iterdir():
        assert KEY.encode() not in path.read_bytes(), f"API key leaked into {path.name}"
    assert json.loads((tmp_path / "gen" / JOB_FILE).read_text())["options"]["api_key_env"] == KEY_ENV


def _materialize(defs, instance, key=None):
    job = defs.resolve_job_def("round" if key else "setup")
    result = job.execute_in_process(instance=instance, raise_on_error=False, **({"partition_key": key} if key else {}))
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def _round_against_base_server(tmp_path, of_url):
    """Setup, then round r001 with the config changes `of_url(url)` gives, while `selftaught serve` serves
    the base model on loopback. Returns (store, the round's log text)."""
    import dagster as dg

    from pipelines.build import build_definitions
    from tests.helpers import copy_config, fresh_dagster_home, make_tiny_config

    config = make_tiny_config(tmp_path)
    with fresh_dagster_home(tmp_path), dg.DagsterInstance.get() as instance:
        defs = build_definitions(config)
        _materialize(defs, instance)
        store = defs.resources["experiment"].store
        srv = Server(store.model_dir("base") / "model")
        try:
            served = copy_config(config, tmp_path / "served.yaml", **of_url(srv.url))
            defs = build_definitions(served)
            instance.add_dynamic_partitions("rounds", ["r001"])
            result = _materialize(defs, instance, "r001")
            logs = " ".join(r.user_message for r in instance.all_logs(result.run_id))
        finally:
            srv.close()
    return store, logs


@pytest.mark.slow
def test_round_with_a_teacher_server_in_a_subprocess(tmp_path, api_key):
    """samples from an OpenAI-compatible server (in an isolated generation subprocess); eval stays local."""
    store, logs = _round_against_base_server(
        tmp_path,
        of_url=lambda url: dict(
            sampling__backend="openai",
            sampling__isolate=True,
            sampling__shard_size=8,
            sampling__openai={"base_url": url, "model": "tiny", "api_key_env": KEY_ENV, "max_concurrency": 4},
        ),
    )
    samples = store.read_table("samples", "r001")
    assert set(samples["policy_id"]) == {"openai:tiny"} and set(samples["backend"]) == {"openai"}
    assert samples.height == 20 * 4
    assert len(list(store.work_dir("r001-samples").glob("shard-*.parquet"))) == 3  # 8 + 8 + 4 prompts
    assert "r001-eval: hf backend" in logs  # the fresh policy is evaluated locally
    assert "in a subprocess" in logs and "shard 3/3 written" in logs
    for path in store.root.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"API key leaked into {path}"


@pytest.mark.slow
def test_a_judge_can_be_any_backend_here_a_server(tmp_path, api_key):
    """verification.verifier judge with judge.backend openai: the server scores the policy's samples."""
    import json

    from filters.judge import parse_score

    store, _ = _round_against_base_server(
        tmp_path,
        of_url=lambda url: dict(
            selection__min_new_rows=0,
            verification={
                "verifier": "judge",
                "max_unverifiable_share": 1.0,
                "judge": {
                    "backend": "openai",
                    "max_score": 9999,
                    "threshold": 5,
                    "max_new_tokens": 4,
                    "template": "{prompt}{completion} Q: 1+",  # ends inside a sum: a digit comes next
                    "openai": {"base_url": url, "model": "tiny", "api_key_env": KEY_ENV},
                },
            },
        ),
    )
    verdicts = store.read_table("verdicts", "r001")
    assert set(verdicts["verifier"]) == {"judge:openai:tiny@1"}
    details = [json.loads(d) for d in verdicts["details"]]
    assert all(d["score"] == parse_score(d["judge_output"], 9999) for d in details)
    assert any(d["score"] is not None for d in details)


@pytest.mark.slow
def test_lora_rounds_stay_one_adapter_on_the_base_model(tmp_path):
    """What lets vLLM serve round k as a LoRARequest on the base: each round continues the adapter."""
    import dagster as dg
    from safetensors.torch import load_file

    from pipelines.build import build_definitions
    from tests.helpers import copy_config, fresh_dagster_home, make_tiny_config
    from train.artifact import read_provenance, serving_paths

    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "lora.yaml",
        training__method="lora",
        training__lora={"r": 8, "alpha": 16},
        training__learning_rate=1e-2,
    )
    with fresh_dagster_home(tmp_path), dg.DagsterInstance.get() as instance:
        defs = build_definitions(config)
        _materialize(defs, instance)
        instance.add_dynamic_partitions("rounds", ["r001", "r002"])
        _materialize(defs, instance, "r001")
        _materialize(defs, instance, "r002")
    store = defs.resources["experiment"].store
    base = store.model_dir("base")
    base_hash = read_provenance(base)["weights_hash"]
    adapters = {}
    for key in ("r001", "r002"):
        art = store.model_dir(key)
        assert read_provenance(art)["adapter_base_hash"] == base_hash
        assert serving_paths(art, base, "vllm") == (str(base / "model"), str(art / "adapter"))
        assert serving_paths(art, base, "hf") == (str(art / "model"), None)
        adapters[key] = load_file(art / "adapter" / "adapter_model.safetensors")
    # r002 continued r001's adapter (same tensors, further trained), not a fresh one.
    assert adapters["r001"].keys() == adapters["r002"].keys()
    changed = [k for k in adapters["r001"] if not adapters["r001"][k].equal(adapters["r002"][k])]
    assert changed
