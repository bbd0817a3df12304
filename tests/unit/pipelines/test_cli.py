"""The CLI in process (pipelines/cli.py): --set overrides are validated like the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from tests.helpers import tiny_config_in as _config


def test_set_overrides_are_validated_like_the_file(tmp_path, capsys):
    config = _config(tmp_path)
    home = tmp_path / "home"
    args = ["validate", "--config", str(config), "--dagster-home", str(home), "--show"]
    assert (
        main(
            [
                *args,
                "--set",
                "training.max_steps=7",
                "--set",
                "training.trl={lr_scheduler_type: cosine}",
                "--set",
                "name=tiny-b",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    shown = yaml.safe_load(out)
    assert shown["training"]["max_steps"] == 7 and shown["training"]["trl"] == {"lr_scheduler_type": "cosine"}
    assert shown["name"] == "tiny-b" and shown["training"]["learning_rate"] == 1e-3  # the rest from the file
    written = Path(err.split("overrides: ", 1)[1].strip())
    assert written.parent == home / "configs" and yaml.safe_load(written.read_text())["extends"] == str(config)

    assert main([*args, "--set", "training.max_stepz=7"]) == 2
    assert "training.max_stepz: unknown key" in capsys.readouterr().err
    assert main([*args, "--set", "training.max_steps=-1"]) == 2
    assert "training.max_steps" in capsys.readouterr().err
    assert main([*args, "--set", "sampling.n=[1"]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--set", "training"])
    assert exit_.value.code == 2 and "expected key.path=value" in capsys.readouterr().err
