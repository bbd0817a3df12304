"""MkDocs hooks: the pages generated from the code when the site is built.

reference/config.md  every config key (pipelines.reference.config_reference)
reference/cli.md     every command and flag (pipelines.reference.cli_reference)
changelog.md         CHANGELOG.md at the repository root, the one place history is written
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent


def on_files(files, config):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pipelines.reference import cli_reference, config_reference

    changelog = (ROOT / "CHANGELOG.md").read_text()
    for uri, content in (
        ("reference/config.md", config_reference()),
        ("reference/cli.md", cli_reference()),
        ("changelog.md", changelog),
    ):
        files.append(File.generated(config, uri, content=content))
    return files
