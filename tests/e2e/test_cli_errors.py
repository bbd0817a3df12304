"""Bad input through the CLI (`selftaught` in a subprocess): a clear one-line message, exit 2 or 1,
nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT


def _cli(*args, home, cwd=None):
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_cli_bad_config_writes_nothing(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"storage_root: {tmp_path / 'store'}\nsampling: {{n: 0}}\n")
    out = _cli("run", "--config", str(cfg), home=tmp_path / "home")
    assert out.returncode == 2 and "sampling.n" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.slow
def test_cli_verifier_failing_every_row_stops_the_round_before_training(tmp_path):
    """The sandbox verifier on the arithmetic task cannot read any reference: every sample is
    unverifiable, the blocking check stops the round, and no training set or policy is written."""
    from tests.helpers import copy_config, make_tiny_config

    cfg = copy_config(make_tiny_config(tmp_path), tmp_path / "wrong.yaml", verification={"verifier": "sandbox"})
    out = _cli("run", "--config", str(cfg), "--rounds", "1", home=tmp_path / "home")
    assert out.returncode == 1
    assert "blocking check unverifiable_share on tiny/verdicts failed: 100.0% of samples unverifiable" in out.stderr
    store = tmp_path / "store"
    assert (store / "tables" / "verdicts" / "r001.parquet").is_file()
    assert not (store / "tables" / "training_set" / "r001.parquet").exists()
    assert not (store / "models" / "r001").exists()


def test_cli_step_failure_names_the_root_cause_in_one_line(tmp_path):
    """A step that fails on a bad model.base: the CLI's line is the exception at the bottom of
    Dagster's chain (here a file that is not a GGUF), not "Error occurred while executing op"."""
    from tests.helpers import copy_config, make_tiny_config

    fake = tmp_path / "weights.gguf"
    fake.write_text("not a model")
    cfg = copy_config(make_tiny_config(tmp_path), tmp_path / "gguf.yaml", model__base=str(fake))
    out = _cli("run", "--config", str(cfg), "--rounds", "1", home=tmp_path / "home")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"setup failed: base_model: train.gguf.BaseModelError: model.base '{fake}': {fake} is not "
        f"a GGUF file (it starts with b'not ', not b'GGUF') [traceback: "
    ), out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "Stack Trace" not in out.stderr
    log = Path(last.split("[traceback: ")[1].split(";")[0])
    assert "BaseModelError" in log.read_text() and "Stack Trace" in log.read_text()
    assert not (tmp_path / "store" / "models" / "base").exists()


@pytest.mark.slow
def test_cli_names_the_failed_step_not_a_check_that_only_warned(tmp_path):
    """On arithmetic rounds the verdict_audit check warns (the step check disagrees with the
    reference check on most correct samples). When training then fails (here: the tracking
    folder is a file), the line names the training error, not the warning, and prints no
    traceback; --debug prints Dagster's log with it."""
    from tests.helpers import copy_config, make_tiny_config

    (tmp_path / "not_a_folder").write_text("a file")
    cfg = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "tracking.yaml",
        operations__tracking__report_to=["tensorboard"],
        operations__tracking__dir=str(tmp_path / "not_a_folder"),
    )
    out = _cli("run", "--config", str(cfg), "--rounds", "1", home=tmp_path / "home")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"r001 failed: policy: FileExistsError: [Errno 17] File exists: '{tmp_path / 'not_a_folder'}' [traceback: "
    ), out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "Stack Trace" not in out.stderr and len(out.stderr.splitlines()) < 40
    import dagster as dg

    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:  # the check did warn
        checks = [
            r.event_log_entry.dagster_event.event_specific_data
            for r in instance.get_records_for_run(
                instance.get_runs(limit=1)[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            ).records
        ]
    assert any(not c.passed and c.severity == dg.AssetCheckSeverity.WARN for c in checks), checks

    debug = _cli("run", "--config", str(cfg), "--rounds", "1", "--debug", home=tmp_path / "home")
    assert debug.returncode == 1 and "Stack Trace" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("r001 failed: policy: FileExistsError")


def test_cli_usage_errors_are_one_line(tmp_path):
    """No traceback for a round count past the limit, a Dagster home that is a file, or an
    empty config file (which used to validate silently as the demo)."""
    out = _cli("run", "--rounds", "99999999999999999999", home=tmp_path / "home")
    assert out.returncode == 2 and "--rounds: must be 1..10,000, got 99999999999999999999" in out.stderr
    (tmp_path / "a_file").write_text("x")
    out = _cli("status", "--dagster-home", str(tmp_path / "a_file"), home=tmp_path / "home")
    assert out.returncode == 2 and out.stderr.strip() == (
        f"error: the Dagster home {tmp_path / 'a_file'} (--dagster-home or $DAGSTER_HOME) is a file, not a folder"
    )
    (tmp_path / "empty.yaml").write_text("")
    out = _cli("validate", "--config", str(tmp_path / "empty.yaml"), home=tmp_path / "home")
    assert out.returncode == 2 and out.stderr.strip().endswith(
        "is empty: write at least `extends: demo` (or the "
        "settings you mean); an empty file is more likely a "
        "mistake than the demo"
    )
    for o in (out,):
        assert "Traceback" not in o.stderr
