"""`selftaught new NAME`: a working project for your own task and checker.

It copies pipelines/templates/new_project/ into NAME/ (its `.py.tmpl` files become `.py`): a config that extends a real-model
preset, a verifier module, 20 example rows (16 train, 4 held out), a test of the verifier
and a pyproject whose entry point makes the verifier installable. `selftaught run --config
NAME/config.yaml --rounds 1` works right after, offline.
"""

from __future__ import annotations

import os
import re
import shutil
import string
import tempfile
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "templates" / "new_project"
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class ScaffoldError(ValueError):
    """The project cannot be created (a bad name, a folder that exists)."""


def module_name(name: str) -> str:
    """The verifier module's name for project `name` (a Python identifier)."""
    return re.sub(r"\W", "_", name).lower() + "_checks"


def new_project(name: str, parent: str | Path = ".") -> Path:
    """Create `parent/name` from the template; returns its path. Written to a temporary
    folder first and renamed into place, so a failure leaves nothing half made."""
    if not NAME.match(name):
        raise ScaffoldError(
            f"project name {name!r}: use letters, digits, '-' and '_', starting with a letter "
            "(it names the experiment and the package)"
        )
    parent = Path(parent)
    target = parent / name
    if target.exists():
        raise ScaffoldError(f"{target} already exists: choose another name or remove it")
    if not parent.is_dir():
        raise ScaffoldError(f"{parent} is not a folder")
    module = module_name(name)
    values = {
        "name": name,
        "module": module,
        "data": Path(os.path.relpath((target / "data").resolve(), Path.cwd())).as_posix(),
    }
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    try:
        for src in sorted(TEMPLATE.rglob("*")):
            if src.is_dir() or "__pycache__" in src.parts:
                continue
            rel = src.relative_to(TEMPLATE)
            if rel.suffix == ".tmpl":  # Python files are stored as .py.tmpl: not modules of this package
                rel = rel.with_suffix("")
            if rel.name == "checks.py":
                rel = rel.with_name(f"{module}.py")
            out = work / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            text = src.read_text(encoding="utf-8")
            out.write_text(
                text if src.suffix == ".jsonl" else string.Template(text).substitute(values), encoding="utf-8"
            )
        os.rename(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target
