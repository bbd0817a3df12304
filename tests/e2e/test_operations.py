"""Operations: the nightly schedule, the auto-continue sensor, plateau stops, stale rounds, a
folder of experiments side by side."""

import json
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest

from pipelines import progress
from pipelines.build import build_definitions
from pipelines.keys import CLI_TAG, EXPERIMENT_TAG
from selftaught.config import load_config
from selftaught.lock import ExperimentLock
from tests.helpers import copy_config, fresh_dagster_home, make_tiny_config

pytestmark = pytest.mark.slow


def _tick(defs, name, instance, cursor=None):
    if name.endswith("nightly"):
        return defs.get_schedule_def(name)(dg.build_schedule_context(instance=instance))
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
    return defs.get_sensor_def(name)(ctx), ctx


def _materialize(defs, instance, request=None):
    job = defs.resolve_job_def("round" if request else "setup")
    kwargs = {"partition_key": request.partition_key, "asset_selection": request.asset_selection} if request else {}
    assert job.execute_in_process(instance=instance, raise_on_error=False, **kwargs).success


def test_schedule_and_sensor_drive_rounds_in_order_and_stop(tmp_path):
    config = copy_config(
        make_tiny_config(tmp_path), tmp_path / "tiny.yaml", max_rounds=2, operations={"auto_continue": {"patience": 5}}
    )
    with fresh_dagster_home(tmp_path), dg.DagsterInstance.get() as instance:
        defs = build_definitions(config)
        assert {s.name for s in defs.schedules} == {"tiny_nightly"}
        skip = _tick(defs, "tiny_nightly", instance)
        assert isinstance(skip, dg.SkipReason) and "setup has not run" in skip.skip_message
        _materialize(defs, instance)

        request = _tick(defs, "tiny_nightly", instance)
        assert isinstance(request, dg.RunRequest) and request.partition_key == "r001"
        assert set(request.asset_selection) == {dg.AssetKey(["tiny", n]) for n in progress.ROUND_ORDER}
        assert "r001" in instance.get_dynamic_partitions("rounds")

        # A run of this experiment in progress: both wait.
        busy = instance.create_run_for_job(defs.resolve_job_def("setup"), tags={EXPERIMENT_TAG: "tiny"})
        assert "in progress" in _tick(defs, "tiny_nightly", instance).skip_message
        assert "in progress" in _tick(defs, "tiny_auto_continue", instance)[0].skip_message
        instance.delete_run(busy.run_id)
        # A run that a killed `selftaught run` left behind does not block, unless its CLI still holds the lock.
        dead = instance.create_run_for_job(
            defs.resolve_job_def("setup"), tags={EXPERIMENT_TAG: "tiny", CLI_TAG: "1@gone"}
        )
        assert isinstance(_tick(defs, "tiny_nightly", instance), dg.RunRequest)
        with ExperimentLock(tmp_path / "store", "tiny").hold("selftaught run (test)"):
            assert "in progress" in _tick(defs, "tiny_nightly", instance).skip_message
        instance.delete_run(dead.run_id)

        _materialize(defs, instance, request)
        follow, _ = _tick(defs, "tiny_auto_continue", instance)
        assert isinstance(follow, dg.RunRequest) and follow.partition_key == "r002"
        _materialize(defs, instance, follow)
        done, ctx = _tick(defs, "tiny_auto_continue", instance)
        assert "max_rounds reached" in done.skip_message
        assert "all 2 rounds are complete" in _tick(defs, "tiny_nightly", instance).skip_message
        store_root = defs.resources["experiment"].storage_root
        record = json.loads((tmp_path / "store" / "auto_continue.json").read_text())
        assert record["reason"] == done.skip_message and [r for r, _ in record["frontier_history"]] == [
            "base",
            "r001",
            "r002",
        ]
        assert str(tmp_path / "store") == store_root

        # Demanding a 100-point gain per round: a plateau after the first round.
        strict = copy_config(
            config,
            tmp_path / "strict.yaml",
            max_rounds=5,
            operations={"auto_continue": {"min_improvement": 1.0, "patience": 1}},
        )
        # (the tiny model's accuracy moves either way between rounds; a 100-point gain never happens)
        stop, _ = _tick(build_definitions(strict), "tiny_auto_continue", instance)
        assert stop.skip_message.startswith("plateau: the last 1 rounds (r002")

        # A changed round setting makes the finished rounds stale: the schedule starts over at r001.
        changed = copy_config(
            config, tmp_path / "changed.yaml", training={**load_config(config).training.model_dump(), "max_steps": 7}
        )
        again = _tick(build_definitions(changed), "tiny_nightly", instance)
        assert again.partition_key == "r001" and len(again.asset_selection) == len(progress.ROUND_ORDER)
        assert progress.next_round(instance, load_config(config)) == (None, [])


def test_a_folder_of_experiments_side_by_side(tmp_path):
    """One Definitions from every YAML in a folder: prefixed assets and jobs, separate stores."""
    from pipelines.build import build_folder_definitions
    from selftaught.config import ConfigError

    folder = tmp_path / "experiments"
    folder.mkdir()
    base = make_tiny_config(tmp_path)
    copy_config(base, folder / "a.yaml", name="exp-a", storage_root=str(tmp_path / "store-a"))
    copy_config(
        base,
        folder / "b.yaml",
        name="exp_b",
        storage_root=str(tmp_path / "store-b"),
        sampling={"n": 2, "temperature": 0.7, "max_new_tokens": 40, "batch_size": 64},
    )
    defs = build_folder_definitions(folder)
    assert {j.name for j in defs.jobs} >= {"exp_a_setup", "exp_a_round", "exp_b_setup", "exp_b_round"}
    assert {s.name for s in defs.schedules} == {"exp_a_nightly", "exp_b_nightly"}
    with fresh_dagster_home(tmp_path), dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("rounds", ["r001"])
        for prefix in ("exp_a", "exp_b"):
            assert defs.resolve_job_def(f"{prefix}_setup").execute_in_process(instance=instance).success
            assert (
                defs.resolve_job_def(f"{prefix}_round")
                .execute_in_process(instance=instance, partition_key="r001")
                .success
            )
        # A run of one experiment takes that experiment's lock only: exp_a busy elsewhere, exp_b still runs.
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time\nfrom selftaught.lock import ExperimentLock\n"
                "ExperimentLock(sys.argv[1], 'exp-a').acquire('test')\nprint('held', flush=True)\n"
                "time.sleep(60)",
                str(tmp_path / "store-a"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "held"
            assert defs.resolve_job_def("exp_b_setup").execute_in_process(instance=instance).success
            assert (
                not defs.resolve_job_def("exp_a_setup")
                .execute_in_process(instance=instance, raise_on_error=False)
                .success
            )
        finally:
            holder.kill()
            holder.wait()
    a = pl.read_parquet(tmp_path / "store-a" / "tables" / "samples" / "r001.parquet")
    b = pl.read_parquet(tmp_path / "store-b" / "tables" / "samples" / "r001.parquet")
    assert a.height == 20 * 4 and b.height == 20 * 2  # each experiment used its own config and store
    copy_config(base, folder / "c.yaml", name="exp_a")  # exp-a and exp_a share a key prefix
    with pytest.raises(ConfigError, match="also used by"):
        build_folder_definitions(folder)
