"""The docs' generated references: every config key from the pydantic models, every command
and flag from the argument parsers. docs/hooks.py renders them at `mkdocs build`, so the
pages cannot drift from the code; tests/project/test_docs.py checks what they depend on (every key
has a description)."""

from __future__ import annotations

import argparse
import json
import types
import typing
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, cast, get_args, get_origin

from pydantic import BaseModel

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Key:
    """One config key: its dotted path, the pydantic field, and the model class it leads to
    (None for a leaf)."""

    path: str
    field: Any
    section: type[BaseModel] | None


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic model classes an annotation mentions (Optional[X], X | None, list[X], ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _section_of(annotation) -> type[BaseModel] | None:
    """The section a key opens: its annotation is a model class, that class or None, or a list of
    them (each item a section: `phases`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is list and len(args) == 1:
        return _section_of(args[0])
    if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
        return _section_of(args[0])
    return None


def sections(root: type[BaseModel], prefix: str = "") -> dict[type[BaseModel], str]:
    """Each model class reachable from `root` and the shortest key path that opens it (a class
    reached twice, like the training section under model.warm_start, is documented once)."""
    where: dict[type[BaseModel], str] = {root: prefix}
    queue = deque([(root, prefix)])
    while queue:
        model, path = queue.popleft()
        for name, field in model.model_fields.items():
            for sub in _models_in(field.annotation):
                if sub not in where:
                    where[sub] = f"{path}.{name}" if path else name
                    queue.append((sub, where[sub]))
    return where


def keys(root: type[BaseModel]) -> Iterator[Key]:
    """Every key under `root`, depth first in declaration order; a section documented at another
    path is not walked again."""
    where = sections(root)

    def walk(model: type[BaseModel], path: str):
        for name, field in model.model_fields.items():
            key = f"{path}.{name}" if path else name
            section = _section_of(field.annotation)
            yield Key(key, field, section)
            if section is not None and where.get(section) == key:
                yield from walk(section, key)

    yield from walk(root, "")


def type_name(annotation, where: dict[type[BaseModel], str] | None = None) -> str:
    """A short, YAML-minded name for a field's type: `"hf" | "vllm"`, `list of float`, `null`."""
    where = where or {}
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        path = where.get(annotation)
        return f"[section](#{path})" if path else "section"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin in (Union, types.UnionType):
        return " \\| ".join(type_name(a, where) for a in args)
    if origin in (tuple, list, set, frozenset):
        inner = [a for a in args if a is not Ellipsis]
        return "list of " + (" \\| ".join(type_name(a, where) for a in inner) if inner else "any")
    if origin is dict:
        k, v = args or (Any, Any)
        return f"map of {type_name(k, where)} to {type_name(v, where)}"
    if origin is typing.Annotated:
        return type_name(args[0], where)
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


def default_of(field) -> str:
    """The default as YAML would write it; a section's default names the keys it sets."""
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        changed = {k: v for k, v in value.model_dump(mode="json", exclude_defaults=True).items()}
        return (
            "a section with " + ", ".join(f"`{k}: {json.dumps(v)}`" for k, v in changed.items())
            if changed
            else "(the section's defaults)"
        )
    if value is None:
        return "`null`"
    if isinstance(value, tuple):
        value = list(value)
    try:
        return f"`{json.dumps(value)}`"
    except TypeError:
        return f"`{value}`"


def bounds_of(field) -> str:
    """The field's numeric bounds and pattern, e.g. `>= 1, <= 4096`."""
    out = []
    for meta in field.metadata:
        for attr, sign in (
            ("ge", ">="),
            ("gt", ">"),
            ("le", "<="),
            ("lt", "<"),
            ("min_length", "length >="),
            ("max_length", "length <="),
        ):
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(
                    f"{sign} {value:,}" if isinstance(value, int) and not isinstance(value, bool) else f"{sign} {value}"
                )
        if getattr(meta, "pattern", None):
            out.append(f"matches `{meta.pattern}`")
    return ", ".join(out)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _doc(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    if not doc or doc.startswith(model.__name__ + "("):  # pydantic's generated signature, not a docstring
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def config_reference(root: type[BaseModel] | None = None) -> str:
    """The configuration reference page (Markdown): one table per section."""
    if root is None:
        from selftaught.config import ExperimentConfig

        root = ExperimentConfig
    where = sections(root)
    by_section: dict[str, list[Key]] = {}
    walked = list(keys(root))
    position = {k.path: i for i, k in enumerate(walked)}
    for key in walked:
        parent = key.path.rpartition(".")[0]
        by_section.setdefault(parent, []).append(key)
    lines = [
        "# Configuration keys",
        "",
        "Every key of an experiment config, generated from the pydantic models in `selftaught/config/` "
        "when the docs are built. A config is one YAML file; any key left out takes the default shown. "
        "Unknown keys and out-of-bound values are errors that name the key "
        "([Configuration](../configuration.md) explains the file, `extends` and `--set`; "
        "`selftaught validate --config FILE --show` prints a whole resolved config).",
        "",
    ]
    for model, path in sorted(where.items(), key=lambda kv: _order(kv[1], position)):
        rows = by_section.get(path, [])
        if not rows:
            continue
        title = path or "top level"
        level = "###" if "." in path else "##"  # a nested section under its parent in the contents
        lines += [f"{level} `{title}` {{#{path or 'top-level'}}}", ""]
        if path and _doc(model):
            lines += [_doc(model), ""]
        lines += ["| key | type | default | bounds | description |", "|---|---|---|---|---|"]
        for key in rows:
            name = key.path.rpartition(".")[2]
            if key.section is not None:
                canonical = where[key.section]
                kind = (
                    f"[section](#{canonical})"
                    if canonical == key.path
                    else f"section: the keys of [`{canonical}`](#{canonical})"
                )
                kind += " \\| null" if _nullable(key.field.annotation) else ""
            else:
                kind = type_name(key.field.annotation, where)
            lines.append(
                f"| `{name}` | {kind} | {_cell(default_of(key.field))} | {_cell(bounds_of(key.field))} "
                f"| {_cell(key.field.description or '')} |"
            )
        lines.append("")
    return "\n".join(lines)


def _nullable(annotation) -> bool:
    return type(None) in get_args(annotation)


def _order(path: str, position: dict[str, int]) -> tuple:
    """Sections in the order their keys are walked: a nested section right after its parent's."""
    return (0, 0) if not path else (1, position.get(path, len(position)))


def _shown_default(action: argparse.Action) -> str:
    value = action.default
    if value in (None, False, [], argparse.SUPPRESS) or action.required:
        return ""
    if isinstance(value, str) and value.startswith(str(REPO) + "/"):
        value = value[len(str(REPO)) + 1 :]  # the checkout's path is not part of the interface
    return f"`{value}`"


def _arguments(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | default | description |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            flag = ", ".join(action.option_strings)
            if action.nargs != 0:
                flag += " " + cast(str, action.metavar or action.dest.upper())  # no tuple metavars here
        else:
            flag = cast(str, action.metavar or action.dest)
            if action.nargs in ("+", "*"):
                flag += " ..."
        need = " (required)" if action.required and action.option_strings else ""
        rows.append(f"| `{flag}` | {_shown_default(action)} | {_cell((action.help or '') + need)} |")
    return rows


def command_parsers() -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """Every `selftaught` command: its argument parser and its one-line help (`serve` has a
    parser of its own). The CLI reference and the docs' flag checks read the commands here."""
    from pipelines.cli import build_parser
    from synth.serve import build_parser as serve_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help or "" for c in sub._choices_actions}
    commands = {name: (parser, helps.get(name, "")) for name, parser in sub.choices.items()}
    serve = serve_parser()
    commands["serve"] = (serve, serve.description or "")
    return commands


def cli_reference() -> str:
    """The command-line reference page (Markdown): each command, its usage and its arguments."""
    lines = [
        "# Command line",
        "",
        "Every `selftaught` command and its arguments, generated from the argument parsers "
        "(`pipelines/cli.py`, `synth/serve.py`) when the docs are built. Commands that take `--config` "
        "default to the embedded demo (`pipelines/presets/demo.yaml`); exit status 0 is success, 2 a bad "
        "config or argument, 1 a failed round or a busy experiment.",
        "",
    ]
    for name, (sub, help_) in command_parsers().items():
        sub.prog = f"selftaught {name}"
        usage = " ".join(sub.format_usage().split())  # one line, whatever the terminal width
        summary = help_[:1].upper() + help_[1:].rstrip(".") + "."
        lines += [f"## `selftaught {name}`", "", summary, "", "```text", usage.removeprefix("usage: "), "```", ""]
        lines += _arguments(sub) + [""]
    return "\n".join(lines)
