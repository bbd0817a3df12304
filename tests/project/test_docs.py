"""The docs site builds, its generated references are complete, and what it shows is true.

- `mkdocs build --strict` passes: no broken link, anchor or missing page (the configuration and CLI
  references are generated from the code by docs/hooks.py, so they are built here too);
- every config key has a description (the configuration reference prints it);
- every YAML snippet in README.md and docs/ that is an experiment config validates;
- README.md stays a front page (<= 250 lines) whose presets table names every preset;
- the docs speak about the product, not about the sessions that built it.

The commands the docs show (and their flags) are checked in tests/project/test_documented_commands.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from pipelines.reference import cli_reference, command_parsers, config_reference, keys
from selftaught.config import ConfigError, ExperimentConfig, load_config
from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Snippets are read as if they sat beside the worked example of the bring-your-own-task guide, so
# the files they name (checks.py, problems.jsonl) are that example's.
SNIPPET_HOME = ROOT / "docs" / "guides" / "unit_conversion"
SECTIONS = set(ExperimentConfig.model_fields) | {"extends"}
# Snippets that name a file only the reader has, each with why (matched by a string in the snippet).
NOT_VALIDATED = {
    "tasks.py:conversion": "the bring-your-own-task guide's own task code, which the reader writes",
}


def test_the_site_builds_strict(tmp_path):
    """No warning at all: a broken link or anchor, a page missing from the nav, a nav entry
    without a page (mkdocs.yml sets strict and turns each of these into a warning)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, f"mkdocs build --strict failed:\n{out.stderr[-4000:]}"
    site = tmp_path / "site"
    for page in ("index.html", "reference/config/index.html", "reference/cli/index.html", "changelog/index.html"):
        assert (site / page).is_file(), page
    config_page = (site / "reference/config/index.html").read_text()
    assert "pad_to_multiple_of" not in config_page or "training.trl" in config_page
    assert "max_unverifiable_share" in config_page and "schedule_cron" in config_page


def test_every_config_key_has_a_description():
    missing = [k.path for k in keys(ExperimentConfig) if not (k.field.description or "").strip()]
    assert not missing, f"{len(missing)} config keys have no description (Field(description=...)): {missing}"


def test_the_config_reference_lists_every_key():
    page = config_reference()
    for key in keys(ExperimentConfig):
        section, _, name = key.path.rpartition(".")
        assert f"## `{section or 'top level'}`" in page and f"| `{name}` |" in page, key.path
    # a section reached twice (the warm start is a training section) is documented once and linked
    assert page.count("## `training`") == 1 and "the keys of [`training`](#training)" in page


def test_the_cli_reference_lists_every_command_and_flag():
    page = cli_reference()
    commands = command_parsers()
    assert {"run", "validate", "serve"} <= set(commands)
    for name, (parser, _) in commands.items():
        assert f"## `selftaught {name}`" in page, name
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in page, (name, flag)
    assert str(ROOT) not in page  # defaults are shown relative to the checkout


def _yaml_blocks() -> list[tuple[str, int, str]]:
    """(page, line, text) of every ```yaml block."""
    blocks = []
    for page in PAGES:
        text = page.read_text()
        for m in re.finditer(r"^```ya?ml[^\n]*\n(.*?)^```", text, re.S | re.M):
            blocks.append((page.relative_to(ROOT).as_posix(), text[: m.start()].count("\n") + 1, m.group(1)))
    return blocks


def _config_snippets() -> list[tuple[str, str]]:
    """(where, YAML) of each snippet that is an experiment config: its top-level keys are config
    sections. A block that mixes sections with other keys is kept, so a misspelt section fails."""
    out = []
    for page, line, text in _yaml_blocks():
        for i, doc in enumerate(text.split("\n---\n")):
            data = yaml.safe_load(doc)
            if isinstance(data, dict) and SECTIONS & set(map(str, data)):
                out.append((f"{page}:{line}" + (f" (document {i + 1})" if i else ""), doc))
    return out


SNIPPETS = _config_snippets()


def test_the_docs_have_config_snippets():
    assert len(SNIPPETS) >= 20, SNIPPETS


@pytest.mark.parametrize("where,text", SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_a_config_snippet_validates(where, text, tmp_path):
    """A snippet is a whole config (the defaults fill the rest) or a part of one: then it validates
    laid over the worked example's config (a dataset task on SmolLM2 with a user checker), as a
    reader would add it to a config of their own. Either way an unknown key or a bad value fails."""
    if any(marker in text for marker in NOT_VALIDATED):
        return
    home = tmp_path / "home"
    shutil.copytree(SNIPPET_HOME, home)
    alone, over = home / "snippet.yaml", home / "snippet_over_example.yaml"
    alone.write_text(text)
    over.write_text("extends: config.yaml\n" + text if "extends:" not in text else text)
    errors = []
    for path in (alone, over):
        try:
            load_config(path)
            return
        except ConfigError as exc:
            errors.append(str(exc))
    pytest.fail(
        f"the config snippet at {where} does not validate, alone:\n{errors[0]}\n"
        f"nor over the worked example's config:\n{errors[1]}"
    )


def test_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250, "README.md: at most 250 lines; the rest belongs on a docs page"
    for preset in sorted((ROOT / "pipelines" / "presets").glob("*.yaml")):
        assert re.search(rf"^\| `{preset.stem}` \|", readme, re.M), (
            f"README's presets table has no row for {preset.name}"
        )


@pytest.mark.parametrize(
    "phrase",
    [
        r"\bthis session\b",
        r"\bin this session\b",
        r"\bthe issue asked\b",
        r"\bthe issue's (?:target|goal)\b",
        r"\bFixed on the way\b",
    ],
)
def test_the_docs_speak_about_the_product_not_its_history(phrase):
    hits = [
        f"{p.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}"
        for p in PAGES
        for text in [p.read_text()]
        for m in re.finditer(phrase, text, re.I)
    ]
    assert not hits, f"history in the docs ({phrase}): {hits}; CHANGELOG.md holds what changed"


def test_every_screenshot_is_on_a_page():
    """The UI screenshots (docs/*.png, written by `SELFTAUGHT_SCREENSHOTS=docs make test-ui`) are each
    shown on the page that explains what they show."""
    text = "\n".join(p.read_text() for p in PAGES)
    unused = [png.name for png in sorted((ROOT / "docs").glob("*.png")) if f"]({png.name})" not in text]
    assert not unused, f"screenshots no page shows: {unused}"
