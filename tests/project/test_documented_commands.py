"""Every command the docs show exists and starts: its `--help` runs.

The commands are read from README.md, docs/**/*.md (code blocks, and inline code that starts
with a command) and the Makefile, so a renamed script, subcommand or target fails here
rather than in a user's terminal. Bench scripts run as the docs run them, as
`python bench/<name>.py` from the repository root, which puts bench/ first on sys.path: a
script named like one of our packages would shadow it (bench/train.py once broke five
scripts with "No module named 'train.artifact'").
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PACKAGES = ["assets", "data", "filters", "pipelines", "selftaught", "synth", "tests", "train"]
LIBRARIES = ["dagster", "datasets", "peft", "polars", "pyarrow", "torch", "transformers", "trl", "vllm"]

# Lines in code blocks that start like a command but are output, each with why.
NOT_COMMANDS = {
    "selftaught check_many": "a row of bench/verify.py's output table (the pool verifier's name)",
    "selftaught sets": "an error message: `selftaught sets max_length (use training.max_length)`",
}

_PROGRAM = re.compile(r"^(?:\$ )?(?:\S*/)?(?P<prog>python3?|selftaught|dagster|make)(?P<rest>(?: \S+)*)")


def documented_lines() -> list[tuple[str, str]]:
    """(command line, where) for each code-block line and inline code span that starts with a command."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        spans = [line for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S) for line in block.splitlines()]
        spans += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        found += [(span.strip(), doc.relative_to(ROOT).as_posix()) for span in spans]
    makefile = (ROOT / "Makefile").read_text()
    found += [(line.strip(), "Makefile") for line in makefile.splitlines() if line.startswith("\t")]
    return [(line, where) for line, where in found if _PROGRAM.match(line)]


def documented_commands() -> dict[tuple[str, str], str]:
    """(program, script | subcommand | target) -> the first place that shows it."""
    commands: dict[tuple[str, str], str] = {}
    for line, where in documented_lines():
        m = _PROGRAM.match(line)
        words = m["rest"].split()
        prog = "python" if m["prog"].startswith("python") else m["prog"]
        if prog == "python":
            if words[:1] == ["-m"] and len(words) > 1:
                what = "-m " + words[1]
            elif words and words[0].endswith(".py"):
                what = words[0]
            else:
                continue
        elif prog in ("selftaught", "dagster"):
            if not words or not re.fullmatch(r"[a-z][a-z_-]*", words[0]):
                continue
            what = words[0]
        else:  # make: the first word that is not an option or a VAR=value
            targets = [w for w in words if not w.startswith("-") and "=" not in w and not w.startswith("$")]
            if not targets or not re.fullmatch(r"[a-z][\w-]*", targets[0]):
                continue
            what = targets[0]
        if "<" in what:  # a placeholder (`python bench/<script>.py`), not a command
            continue
        if f"{prog} {what}" not in NOT_COMMANDS:
            commands.setdefault((prog, what), where)
    return commands


COMMANDS = documented_commands()


@functools.cache
def _script_help(script: str) -> subprocess.CompletedProcess:
    """`python <script> --help` run from the root as the docs run it, once per script (three
    tests read it: the script starts, it shadows nothing, the flags the docs pass exist)."""
    return subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _ids(items):
    return [f"{prog} {what}" for prog, what in items]


def test_the_docs_show_the_commands_a_user_needs():
    """The extraction itself works: these are in README's first screens."""
    for expected in [("make", "demo"), ("make", "test"), ("selftaught", "run"), ("selftaught", "status")]:
        assert expected in COMMANDS, sorted(COMMANDS)


@pytest.mark.parametrize("prog,what", sorted(COMMANDS), ids=_ids(sorted(COMMANDS)))
def test_documented_command_starts(prog, what):
    where = COMMANDS[(prog, what)]
    if prog == "make":
        out = subprocess.run(["make", "-n", what], cwd=ROOT, capture_output=True, text=True, timeout=60)
    elif prog == "selftaught":
        out = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", what, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "usage:" in out.stdout, f"`selftaught {what}` ({where}) is not a subcommand:\n{out.stderr[-1500:]}"
    elif prog == "dagster":
        out = subprocess.run(
            [str(Path(sys.executable).parent / "dagster"), what, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    elif what.startswith("-m "):
        module = what[3:]
        if module == "pytest":
            return
        out = subprocess.run(
            [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
    else:
        assert (ROOT / what).is_file(), f"{where} shows `python {what}`: there is no such file"
        out = _script_help(what)
    assert out.returncode == 0, f"{where} shows `{prog} {what}`; it fails:\n{out.stderr[-2000:]}"


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "bench").glob("*.py")))
def test_every_bench_script_has_help_and_shadows_nothing(script):
    """Also the scripts the docs do not show yet: each runs from the root as `python bench/<script>`."""
    name = script.removesuffix(".py")
    assert name not in PACKAGES + LIBRARIES, (
        f"bench/{script} shadows the package `{name}` for every script in bench/ (it is first on sys.path); rename it"
    )
    out = _script_help(f"bench/{script}")
    assert out.returncode == 0 and "usage:" in out.stdout, out.stderr[-2000:]


def _flags(rest: str) -> list[str]:
    """The --flags of a documented command line, up to a comment, a pipe or a next command."""
    rest = re.split(r"\s#|\s\||&&|;|\)", rest)[0]
    return sorted({m.split("=")[0] for m in re.findall(r"(?<![\w-])--[a-z][\w-]*(?:=\S*)?", rest)})


def documented_flags() -> dict[tuple[str, str], dict[str, str]]:
    """(program, subcommand | script) -> {flag: the first place that shows it}, for `selftaught`
    commands and the Python scripts the docs run."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for line, where in documented_lines():
        m = _PROGRAM.match(line)
        words = m["rest"].split()
        if m["prog"] == "selftaught" and words and re.fullmatch(r"[a-z][a-z_-]*", words[0]):
            key = ("selftaught", words[0])
        elif m["prog"].startswith("python") and words and words[0].endswith(".py") and "<" not in words[0]:
            key = ("python", words[0])
        else:
            continue
        for flag in _flags(" ".join(words[1:])):
            found.setdefault(key, {}).setdefault(flag, where)
    return found


FLAGS = documented_flags()


def _known_flags(prog: str, what: str) -> set[str]:
    if prog == "selftaught":
        from pipelines.reference import command_parsers

        parser, _ = command_parsers()[what]
        return {flag for action in parser._actions for flag in action.option_strings}
    return set(re.findall(r"(?<![\w-])--[a-z][\w-]*", _script_help(what).stdout))


def test_the_docs_show_flags():
    """The extraction itself works."""
    assert "--rounds" in FLAGS[("selftaught", "run")] and "--config" in FLAGS[("selftaught", "run")]


@pytest.mark.parametrize("prog,what", sorted(FLAGS), ids=_ids(sorted(FLAGS)))
def test_documented_flags_exist(prog, what):
    """Every flag the docs pass to a command is one the command takes (a renamed or invented flag
    fails here, not in a user's terminal)."""
    if prog == "python" and not (ROOT / what).is_file():
        pytest.fail(f"{next(iter(FLAGS[(prog, what)].values()))} shows `python {what}`: there is no such file")
    known = _known_flags(prog, what)
    unknown = {flag: where for flag, where in FLAGS[(prog, what)].items() if flag not in known}
    assert not unknown, f"`{prog} {what}` takes no such flags: " + ", ".join(f"{f} ({w})" for f, w in unknown.items())
