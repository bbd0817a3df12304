"""User code through whole rounds: an out-of-tree package, installed into this environment
with `pip install --no-deps`, registers a task and a verifier as entry points; two rounds run
through Dagster (`selftaught run`) on them; the verdicts name the package and its version;
bumping the version makes the rounds stale. And one TRL-style reward function, from a file
beside the config, drives an offline SFT round and a GRPO round."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from tests.helpers import ROOT, copy_config, make_tiny_config, run_rounds

DIST = "selftaught-doubling"

PACKAGE = '''
"""A task and a verifier of an out-of-tree package (tests/e2e/test_plugin_rounds.py)."""

import re

from selftaught.plugins import Problem, task, verifier


@task(verifier="doubled")
def doubling(rng, level):
    x = rng.randint(0, 10 ** level - 1)
    return Problem(f"Q: {x}+{x}=? A:", 2 * x, f" {2 * x}", {"x": x})


@verifier
def doubled(prompt, completion, reference, *, x=None, **row):
    numbers = re.findall(r"-?\\d+", completion)
    if not numbers:
        return False, "no number"
    return int(numbers[-1]) == 2 * x, f"{numbers[-1]} for x={x}"
'''


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True, timeout=300
    )


def _install(folder: Path, version: str) -> None:
    (folder / "st_doubling.py").write_text(PACKAGE)
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{DIST}"
        version = "{version}"

        [project.entry-points."selftaught.tasks"]
        doubling = "st_doubling:doubling"

        [project.entry-points."selftaught.verifiers"]
        doubled = "st_doubling:doubled"

        [tool.setuptools]
        py-modules = ["st_doubling"]
    """)
    )
    out = _pip("install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(folder))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture
def package(tmp_path):
    """The package's source folder; installed by the test, uninstalled afterwards whatever happens."""
    folder = tmp_path / "doubling_pkg"
    folder.mkdir()
    yield folder
    _pip("uninstall", "-q", "-y", DIST)


def _cli(*args, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True, timeout=900, cwd=cwd
    )


def _metadata(home: Path, asset: str, key: str | None) -> dict:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        rec = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["plugged", asset]), asset_partitions=[key] if key else None),
            limit=1,
        ).records[0]
        return {k: v.value for k, v in rec.asset_materialization.metadata.items()}


@pytest.mark.slow
def test_an_installed_packages_task_and_verifier_run_two_rounds_and_a_version_bump_makes_them_stale(tmp_path, package):
    _install(package, "1.0.0")
    home = tmp_path / "home"
    listed = _cli("plugins", home=home)
    assert listed.returncode == 0, listed.stderr
    for name in ("doubling", "doubled"):
        assert any(line.split()[:2] == [name, f"{DIST}==1.0.0"] for line in listed.stdout.splitlines()), listed.stdout
    config = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "plugged.yaml",
        name="plugged",
        task={"name": "doubling", "warm_start": {2: 40}, "pool": {2: 20}, "eval": {2: 16}, "frontier": 2},
        selection={"min_new_rows": 0},
    )  # the tiny model may not double anything yet

    first = _cli("run", "--config", str(config), "--rounds", "2", home=home)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    store = tmp_path / "store" / "tables"
    verdicts = pl.read_parquet(store / "verdicts" / "r001.parquet")
    label = verdicts["verifier"][0]
    assert label.startswith(f"doubled@{DIST}==1.0.0+") and set(verdicts["verifier"]) == {label}
    assert verdicts.height == 20 * 4 and set(verdicts["reason"].str.extract(r"for x=(\d+)").drop_nulls()) != set()
    prompts = pl.read_parquet(store / "prompts" / "r001.parquet")
    assert prompts["prompt_id"][0].startswith("doubling-") and json.loads(prompts["fields"][0])["x"] >= 0
    meta = _metadata(home, "verdicts", "r001")
    assert meta["verifier"] == label and meta["verifier_origin"] == f"{DIST}==1.0.0"
    assert _metadata(home, "eval_prompts", None)["task_origin"] == f"{DIST}==1.0.0"

    row = pl.read_parquet(store / "training_set" / "r002.parquet").filter(pl.col("origin") == "sample")
    if row.height:  # lineage names the checker of a model-written row
        lineage = _cli("lineage", "--config", str(config), row["row_id"][0], home=home)
        assert f"by doubled@{DIST}==1.0.0" in lineage.stdout, lineage.stdout + lineage.stderr

    again = _cli("run", "--config", str(config), "--rounds", "2", home=home)
    assert "r001: already complete" in again.stdout and "r002: already complete" in again.stdout, again.stdout

    _install(package, "1.1.0")  # the same code, a new release: what judged the rounds changed
    bumped = _cli("run", "--config", str(config), "--rounds", "2", home=home)
    assert bumped.returncode == 0, bumped.stdout[-3000:] + bumped.stderr[-3000:]
    assert "r001: running ..." in bumped.stdout and "already complete" not in bumped.stdout, bumped.stdout
    assert pl.read_parquet(store / "verdicts" / "r001.parquet")["verifier"][0].startswith(f"doubled@{DIST}==1.1.0+")
    assert _metadata(home, "verdicts", "r002")["verifier_origin"] == f"{DIST}==1.1.0"


REWARD = '''
import re


def near(prompts, completions, reference, **columns):
    """A TRL reward function: 1.0 for the reference as the last number, 0.5 for one off, else 0."""
    out = []
    for completion, ref in zip(completions, reference):
        numbers = re.findall(r"-?\\d+", completion)
        if not numbers:
            out.append(0.0)
            continue
        gap = abs(int(numbers[-1]) - int(ref))
        out.append(1.0 if gap == 0 else 0.5 if gap == 1 else 0.0)
    return out
'''


@pytest.mark.slow
def test_one_reward_function_drives_an_offline_round_and_a_grpo_round(tmp_path):
    (tmp_path / "rewards.py").write_text(REWARD)
    offline = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "sft.yaml",
        max_rounds=1,
        verification={"verifier": "rewards.py:near"},
        selection={"min_new_rows": 0},
    )
    store, meta, _ = run_rounds(offline, tmp_path / "a", 1)
    verdicts = store.read_table("verdicts", "r001")
    label = verdicts["verifier"][0]
    assert label.startswith("near@sha256:") and set(verdicts["reward"]) <= {0.0, 0.5, 1.0}
    assert set(verdicts.filter(pl.col("reward") < 1.0)["verdict"]) <= {"incorrect"}  # threshold 1.0
    assert meta[("verdicts", "r001")]["verifier_origin"].startswith(f"file {tmp_path / 'rewards.py'}")
    assert meta[("verdicts", "r001")]["audit_disagreement_share"] == 0.0  # deterministic: the re-check agrees

    online = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "grpo.yaml",
        max_rounds=1,
        verification={"verifier": "rewards.py:near"},
        storage_root=str(tmp_path / "store-grpo"),
        training={
            "method": "full",
            "max_steps": 3,
            "learning_rate": 1e-4,
            "save_every": 0,
            "objective": "grpo",
            "grpo": {"num_generations": 4, "prompts_per_step": 2, "max_completion_length": 40, "temperature": 0.8},
        },
    )
    store, meta, _ = run_rounds(online, tmp_path / "b", 1)
    rollouts = store.read_table("rollouts", "r001")
    assert rollouts.height == 3 * 2 * 4 and set(rollouts["verifier"]) == {label}  # the same function, same hash
    assert set(rollouts["reward"]) <= {0.0, 0.5, 1.0}  # GRPO got its scores, not 1 / 0
    assert meta[("policy", "r001")]["rollout_verifier"] == label
