"""Scale-out on existing engines: training under `accelerate launch` in several processes
(gloo on CPU here; DDP / FSDP / DeepSpeed on a GPU node through an accelerate config), and a
round on dagster-celery workers."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from selftaught.store import Store
from synth.arithmetic import make_problems
from synth.tiny import TinySpec, build_tiny_model
from tests.helpers import ROOT, copy_config, free_port, make_tiny_config, run_rounds, start_moto
from train.artifact import read_provenance
from train.common import LoraSettings
from train.launch import LaunchError, launch
from train.sft import SFTSettings

TINY = TinySpec(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=64)


@pytest.mark.slow
def test_two_training_processes_finish_and_one_adapter_is_saved(tmp_path):
    init = build_tiny_model(TINY, tmp_path / "init")
    rows = make_problems({1: 40}, seed=1).select("prompt", pl.col("target").alias("completion"))
    settings = SFTSettings(method="lora", max_steps=6, batch_size=4, lora=LoraSettings(r=4, alpha=8))
    lines = []
    metrics = launch("sft", init, rows, tmp_path / "out", settings, processes=2, log=lines.append)
    out = tmp_path / "out"
    ranks = sorted(p.name for p in (out / "ranks").glob("*.json"))
    assert ranks == ["rank-0.json", "rank-1.json"]  # both ranks finished
    assert metrics["processes"] == 2 and metrics["steps"] == 6
    assert [p.name for p in out.glob("adapter")] == ["adapter"] and (out / "model" / "model.safetensors").is_file()
    assert not (out / "rows.parquet").exists() and not (out / "checkpoints").exists()
    assert any("rank 1 of 2 finished" in line for line in lines)


def test_a_failed_launch_says_why(tmp_path):
    init = tmp_path / "no-model"
    rows = pl.DataFrame({"prompt": ["Q"], "completion": ["A"]})
    with pytest.raises(LaunchError, match="exited with .*not a loadable model"):
        launch(
            "sft",
            init,
            rows,
            tmp_path / "out",
            SFTSettings(max_steps=1),
            processes=1,
            config_file=None,
            extra=("--cpu",),
            log=lambda _: None,
        )


@pytest.mark.slow
def test_a_round_samples_and_trains_in_two_processes_and_writes_provenance_once(tmp_path):
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "ddp.yaml",
        max_rounds=1,
        training__launcher={"processes": 2},
        sampling__data_parallel=2,
        sampling__shard_size=8,
    )
    store, _, logs = run_rounds(config, tmp_path)
    logs = logs["r001"]
    artifact = store.model_dir("r001")
    prov = read_provenance(artifact)
    assert prov["metrics"]["processes"] == 2 and prov["policy_id"] == "r001"
    assert len(list(Path(artifact).rglob("provenance.json"))) == 1
    assert "training in 2 processes" in logs and "rank 1 of 2 finished" in logs
    assert "generation: 3 shards over 2 processes" in logs  # 20 pool prompts, 8 per shard


@pytest.mark.cluster
def test_a_round_runs_on_celery_workers_with_gpu_and_cpu_queues(tmp_path, monkeypatch, request):
    """The executor is configuration: operations.executor celery. GPU stages go to the
    worker on the gpu queue, CPU stages to the one on the cpu queue. The storage root is a
    bucket (moto's S3 server) and each process has its own cache, as on separate machines:
    stages hand data to each other only through the bucket."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("dagster_celery", reason="make test-cluster installs dagster-celery")
    if shutil.which("redis-server") is None:
        pytest.skip("make test-cluster installs Debian's redis-server")
    import yaml

    from pipelines.instance import dagster_home

    port = free_port()
    broker = {"broker": f"redis://127.0.0.1:{port}/0", "backend": f"redis://127.0.0.1:{port}/1"}
    moto, endpoint = start_moto(tmp_path / "moto.log")
    request.addfinalizer(lambda: os.killpg(moto.pid, signal.SIGTERM))
    aws = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    bucket = Store("s3://cluster/run", cache=tmp_path / "check-cache", options={"endpoint_url": endpoint})
    for k, v in aws.items():  # for this process's own look at the bucket
        monkeypatch.setenv(k, v)
    bucket.remote.fs.mkdir("cluster")
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "celery.yaml",
        max_rounds=1,
        storage_root="s3://cluster/run",
        storage_options={"endpoint_url": endpoint},
        operations={"executor": {"kind": "celery", "config": broker}},
    )
    (tmp_path / "worker.yaml").write_text(yaml.safe_dump({"execution": {"config": broker}}))
    home = dagster_home(str(tmp_path / "home"))
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        **aws,
        "DAGSTER_HOME": str(home),
        "SELFTAUGHT_CONFIG": str(config),
        "PATH": bin_dir + os.pathsep + os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "SELFTAUGHT_CACHE": str(tmp_path / "cache-submitter"),
    }
    with dg.DagsterInstance.get() as instance:  # create the instance's tables before the workers race to
        instance.add_dynamic_partitions("rounds", ["r001"])
    procs = [
        subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    logs = {q: tmp_path / f"worker-{q}.log" for q in ("gpu", "cpu")}
    try:
        for q, log in logs.items():
            procs.append(
                subprocess.Popen(
                    [
                        f"{bin_dir}/dagster-celery",
                        "worker",
                        "start",
                        "-A",
                        "dagster_celery.app",
                        "-y",
                        str(tmp_path / "worker.yaml"),
                        "-q",
                        q,
                        "-n",
                        f"{q}-worker",
                    ],
                    env={**env, "SELFTAUGHT_CACHE": str(tmp_path / f"cache-{q}")},
                    stdout=log.open("w"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 60
        while not all("ready." in log.read_text() for log in logs.values()):
            assert time.monotonic() < deadline, "celery workers did not start: " + logs["gpu"].read_text()[-2000:]
            time.sleep(0.5)
        for job, tags in (("setup", "{}"), ("round", '{"dagster/partition": "r001"}')):
            res = subprocess.run(
                [f"{bin_dir}/dagster", "job", "execute", "-m", "pipelines.definitions", "-j", job, "--tags", tags],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="round"))
        assert runs and runs[0].status == dg.DagsterRunStatus.SUCCESS
        events = instance.all_logs(runs[0].run_id)
    ran_on = {}
    for e in events:
        if e.dagster_event and "Executing steps" in (e.dagster_event.message or ""):
            meta = {k: v.value for k, v in e.dagster_event.engine_event_data.metadata.items()}
            ran_on[meta.get("step_keys")] = meta.get("Celery worker")
    assert ran_on["samples"].startswith("gpu-worker") and ran_on["policy"].startswith("gpu-worker")
    assert ran_on["verdicts"].startswith("cpu-worker") and ran_on["training_set"].startswith("cpu-worker")
    assert bucket.read_table("evaluation", "r001").height > 0
    assert bucket.provenance("r001")["policy_id"] == "r001"
    # the gpu worker trained and evaluated there; the cpu worker never needed a model
    assert (tmp_path / "cache-gpu" / "s3" / "cluster" / "run" / "models" / "r001" / "model").is_dir()
    assert (tmp_path / "cache-cpu" / "s3" / "cluster" / "run" / "tables" / "verdicts" / "r001.parquet").is_file()
    assert not (tmp_path / "cache-cpu" / "s3" / "cluster" / "run" / "models").exists()
