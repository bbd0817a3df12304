"""`selftaught plugins`: every task, verifier and training objective a config can name, with
its origin (built-in, package==version, a file and its sha256) and its capabilities; with
--config, also the user code that config names by path."""

from __future__ import annotations

from selftaught.plugins import OBJECTIVES, TASKS, VERIFIERS, Plugin


def _rows(entries: list[Plugin], extra: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    return [
        (p.name, p.origin.short(), p.caps.describe() + (f"; {extra[p.name]}" if extra and p.name in extra else ""))
        for p in entries
    ]


def _table(title: str, rows: list[tuple[str, str, str]]) -> list[str]:
    width = [max(len(r[i]) for r in rows + [("name", "origin", "")]) for i in range(2)]
    out = [title, f"  {'name':<{width[0]}}  {'origin':<{width[1]}}  capabilities"]
    out += [f"  {name:<{width[0]}}  {origin:<{width[1]}}  {caps}" for name, origin, caps in rows]
    return out


def plugin_listing(cfg=None) -> str:
    """The registries as tables; `cfg` (an ExperimentConfig) adds what it uses."""
    tasks = TASKS.entries()
    verifiers = VERIFIERS.entries()
    default_for: dict[str, list[str]] = {}
    for t in tasks:
        default_for.setdefault(t.caps.verifier, []).append(t.name)
    notes = {v: "default for " + ", ".join(ts) for v, ts in default_for.items()}
    if cfg is not None:
        used = cfg.plugins()
        for role, kind_entries in (("task", tasks), ("verifier", verifiers), ("evaluation verifier", verifiers)):
            plugin = used[role]
            if (
                plugin.name not in {p.name for p in kind_entries}
                or not plugin.builtin
                and all(p.origin != plugin.origin for p in kind_entries)
            ):
                kind_entries.append(plugin)
    lines = (
        _table("tasks", _rows(tasks))
        + [""]
        + _table("verifiers", _rows(verifiers, notes))
        + [""]
        + _table("training objectives", _rows(OBJECTIVES.entries()))
    )
    if cfg is not None:
        lines += ["", f"experiment {cfg.name} uses:"]
        for role, plugin in cfg.plugins().items():
            where = f" ({plugin.spec})" if not plugin.builtin and plugin.spec != plugin.name else ""
            lines.append(f"  {role + ':':<21} {plugin.name} [{plugin.origin.describe()}]{where}")
    lines += [
        "",
        "User code: task.name / verification.verifier as module:attribute, file.py:attribute (beside the "
        "config), or an installed package's entry point (groups selftaught.tasks, selftaught.verifiers).",
    ]
    return "\n".join(lines)
