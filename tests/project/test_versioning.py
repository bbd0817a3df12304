"""The version is part of every round hash (selftaught/config/experiment.py): when what an
existing config computes changes, the version changes with it, and CHANGELOG.md says why.

tests/snapshots/config_content.json records, under the version that wrote it, each preset's
content hash (its round hash without the version). A preset whose content changed under the
same version fails here: bump `selftaught.__version__`, add the CHANGELOG entry, then

    SELFTAUGHT_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/project/test_versioning.py

(A change of code that computes other rows from the same config, such as a seed formula, is
not visible in a config hash: tests/unit/selftaught/test_seeds.py pins the seeds, and the
CHANGELOG rule holds for it too.)
"""

import json
import os
import re
import tomllib
from pathlib import Path

from selftaught import __version__
from selftaught.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "tests" / "snapshots" / "config_content.json"
PRESETS = sorted((ROOT / "pipelines" / "presets").glob("*.yaml"))


def _content(path) -> str:
    """The preset's content hash, and each phase's (a phase computes its rounds as its own config)."""
    cfg = load_config(path)
    return "+".join([cfg.content_hash(), *(cfg.for_round(phase.span()[0]).content_hash() for phase in cfg.phases)])


def current() -> dict:
    return {"version": __version__, "content_hash": {p.stem: _content(p) for p in PRESETS}}


def changed(recorded: dict, now: dict) -> list[str]:
    before = recorded["content_hash"]
    return sorted(k for k in before.keys() & now["content_hash"].keys() if before[k] != now["content_hash"][k])


def test_a_preset_that_computes_something_else_needs_a_new_version():
    now = current()
    recorded = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.is_file() else None
    same_version = recorded is not None and recorded["version"] == __version__
    moved = changed(recorded, now) if recorded else []
    assert not (same_version and moved), (
        f"presets {moved} compute something else under the same version {__version__}: bump "
        "selftaught.__version__ (selftaught/__init__.py), say why in CHANGELOG.md, then "
        "SELFTAUGHT_UPDATE_SNAPSHOTS=1 to record the new version's hashes"
    )
    if os.environ.get("SELFTAUGHT_UPDATE_SNAPSHOTS") == "1" or recorded is None:
        SNAPSHOT.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        recorded = now
    assert recorded == now, (
        f"the version is {__version__}, the recorded hashes are {recorded['version']}'s: "
        "SELFTAUGHT_UPDATE_SNAPSHOTS=1 to record them"
    )


def test_the_version_is_written_once_and_has_a_changelog_entry():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "selftaught.__version__"}
    headings = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings and headings[0] == __version__, "CHANGELOG.md's newest release must be the package version"


# Modules that did not pass mypy when it was adopted; the list may only shrink.
MYPY_RATCHET_MAX = 5


def test_the_mypy_ratchet_only_shrinks():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = [m for o in project["tool"]["mypy"].get("overrides", []) if o.get("ignore_errors") for m in o["module"]]
    assert len(listed) <= MYPY_RATCHET_MAX, (
        f"{len(listed)} modules skip mypy, the most allowed is {MYPY_RATCHET_MAX}: fix the new module's types instead"
    )
    missing = [m for m in listed if not (ROOT / (m.replace(".", "/") + ".py")).is_file()]
    assert not missing, f"the mypy ratchet lists modules that do not exist: {missing} (remove them)"
