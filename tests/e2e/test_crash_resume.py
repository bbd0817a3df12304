"""kill -9 at several points of a real round (`selftaught run` in a subprocess); the
rerun completes it with the same content hashes as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from selftaught.files import file_hash
from tests.helpers import ROOT, copy_config, make_tiny_config

pytestmark = pytest.mark.slow
TABLES = ["prompts", "samples", "verdicts", "training_set", "evaluation"]


def _config(folder: Path) -> Path:
    return copy_config(
        make_tiny_config(folder),
        folder / "crash.yaml",
        max_rounds=1,
        sampling={"n": 4, "temperature": 0.7, "max_new_tokens": 40, "batch_size": 16, "shard_size": 4},
        training={"method": "full", "max_steps": 12, "learning_rate": 1e-3, "batch_size": 8, "save_every": 3},
        evaluation={"max_new_tokens": 40, "batch_size": 4},
    )


def _start(config: Path, home: Path) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config), "--rounds", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> bool:
    """SIGKILL the whole run when `ready()` holds; False if the run ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


def _hashes(store: Path) -> dict[str, str]:
    out = {t: file_hash(store / "tables" / t / "r001.parquet")[:16] for t in TABLES}
    out["weights"] = file_hash(store / "models" / "r001" / "model" / "model.safetensors")[:16]
    return out


def _all_readable(store: Path) -> None:
    """Nothing under a final name is half-written (temporary files are dot-prefixed)."""
    for path in store.rglob("*.parquet"):
        if not path.name.startswith("."):
            pl.read_parquet(path)


def test_kill_9_at_several_points_then_resume_to_identical_files(tmp_path):
    clean_dir, crash_dir = tmp_path / "clean", tmp_path / "crash"
    clean_dir.mkdir()
    crash_dir.mkdir()
    clean = _start(_config(clean_dir), clean_dir / "home")
    out, _ = clean.communicate(timeout=600)
    assert clean.returncode == 0, out[-3000:]
    want = _hashes(clean_dir / "store")

    config, home, store = _config(crash_dir), crash_dir / "home", crash_dir / "store"
    work = store / "work"
    points = {
        "generation": lambda: len(list((work / "r001-samples").glob("shard-*.parquet"))) >= 2,
        "after sampling (verification / dataset build)": lambda: (
            store / "tables" / "samples" / "r001.parquet"
        ).exists(),
        "training": lambda: any((work / "r001" / "checkpoints").glob("checkpoint-*")),
        "evaluation": lambda: any((work / "r001-eval").glob("shard-*.parquet")),
    }
    killed = []
    for name, ready in points.items():
        if _kill_when(_start(config, home), ready):
            killed.append(name)
            _all_readable(store)
    assert len(killed) >= 3, f"killed only at {killed}"  # a fast stage may finish before its trigger is seen
    final = _start(config, home)
    out, _ = final.communicate(timeout=600)
    assert final.returncode == 0, out[-3000:]
    assert "1 rounds complete" in out
    assert _hashes(store) == want, f"killed at {killed}"
    # The ledger counts the killed attempts: their seconds are carried into the stage that
    # finished, and the trained tokens are the uninterrupted run's (TRL's count restarted at 0).
    import dagster as dg

    def stage_meta(home_dir: Path, stage: str) -> dict:
        with dg.DagsterInstance.from_config(str(home_dir)) as instance:
            rec = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(["tiny", stage]), asset_partitions=["r001"]), limit=1
            ).records[0]
            return {k: v.value for k, v in rec.asset_materialization.metadata.items()}

    for point, stage in [("generation", "samples"), ("training", "policy"), ("evaluation", "evaluation")]:
        if point in killed:
            assert stage_meta(home, stage).get("stage_attempts", 1) >= 2, (point, stage_meta(home, stage))
    if "training" in killed:
        assert (
            stage_meta(home, "policy")["trained_tokens"] == stage_meta(clean_dir / "home", "policy")["trained_tokens"]
        )
    clean_wall = stage_meta(clean_dir / "home", "policy")["stage_wall_s"]
    if "training" in killed:  # the killed attempt trained past a checkpoint: more seconds than a clean one
        assert stage_meta(home, "policy")["stage_wall_s"] > clean_wall * 0.8, (stage_meta(home, "policy"), clean_wall)
