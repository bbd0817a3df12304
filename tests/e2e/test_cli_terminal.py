"""The CLI people expect on a real pseudo-terminal: progress bars (plain lines elsewhere),
`selftaught runs`, and `selftaught export` wired in."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from pipelines.cli import main
from tests.helpers import fresh_dagster_home
from tests.helpers import tiny_config_in as _config


def _run_in_terminal(cmd: list[str], env: dict, timeout: float = 600) -> str:
    """Run `cmd` with a pseudo-terminal as its stdout and stderr; return all it wrote."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_a_terminal_run_shows_progress_bars_then_runs_lists_it_and_export_writes_it(tmp_path, capsys):
    config = _config(tmp_path)
    home = tmp_path / "dagster_home"  # fresh_dagster_home(tmp_path) opens it again below
    env = {**os.environ, "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    out = _run_in_terminal(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "run",
            "--config",
            str(config),
            "--rounds",
            "1",
            "--set",
            "training.max_steps=12",
        ],
        env,
    )
    # tqdm redraws each bar in place with \r: a stage's bar appears several times with a count and a rate
    for stage in ("r001-samples", "r001 verify", "fine-tuning", "r001 eval"):
        assert re.search(re.escape(stage) + r":\s+\d+%\|.*\| \d+/\d+ \[", out), (stage, out[-3000:])
    assert re.search(r"fine-tuning:\s+\d+%\|.*\| \d+/12 \[.*loss=", out)  # the loss beside the bar
    assert "train step 12/12" not in out  # the lines a bar replaces are not printed
    assert "1 rounds complete" in out

    # not a terminal: the same command prints plain lines, no bar
    plain = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "status", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plain.returncode == 0 and "r001" in plain.stdout and "\r" not in plain.stdout

    # selftaught runs: the experiment with its last round and frontier accuracy (from the evaluation)
    assert main(["runs", "--dagster-home", str(home)]) == 0
    table = capsys.readouterr().out
    line = next(row for row in table.splitlines() if row.startswith("tiny "))
    import dagster as dg

    with fresh_dagster_home(tmp_path), dg.DagsterInstance.get() as instance:
        rec = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["tiny", "evaluation"])), limit=1
        ).records[0]
    accuracy = rec.asset_materialization.metadata["frontier_accuracy"].value
    assert line.split()[1:4] == ["1", "r001", "1d"] and f"{100 * accuracy:.1f}%" in line

    # selftaught export, through the CLI
    target = tmp_path / "shared"
    assert main(["export", "r001", "--config", str(config), "--to", str(target)]) == 0
    assert (target / "dataset" / "README.md").is_file() and (target / "model" / "config.json").is_file()
