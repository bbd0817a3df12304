"""The per-round table the CLI prints, read back from the round files on disk."""

from __future__ import annotations

from filters.metrics import frontier_candidates, pick_frontier
from filters.summary import aligned


def format_table(rows: list[dict]) -> str:
    digits = sorted({d for r in rows for d in r.get("accuracy", {})})
    phased = any("phase" in r for r in rows)
    controlled = any("control" in r for r in rows)
    head = (
        ["round", *(["phase"] if phased else []), "samples", "pass", "kept", "kept w/ bad steps", "train rows"]
        + [h for d in digits for h in ([f"acc {d}d", f"ctrl {d}d"] if controlled else [f"acc {d}d"])]
        + ["wall s"]
    )
    lines = [head]
    for r in rows:
        acc = r.get("accuracy", {})
        ctrl = acc if r["round"] == "base" else r.get("control", {})  # the base model is its own control
        lines.append(
            [
                r["round"],
                *([r.get("phase", "-")] if phased else []),
                str(r.get("samples", "-")),
                f"{r['pass_rate']:.1%}" if "pass_rate" in r else "-",
                str(r.get("new_rows", "-")),
                f"{r['bad_steps']:.1%}" if "bad_steps" in r else "-",
                str(r.get("train_rows", "-")),
                *[cell for d in digits for cell in ([pct(acc, d), pct(ctrl, d)] if controlled else [pct(acc, d)])],
                f"{r['wall_s']:.0f}" if "wall_s" in r else "-",
            ]
        )
    return aligned(lines)


def pct(accuracy: dict, d: int) -> str:
    return f"{accuracy[d]:.1%}" if d in accuracy else "-"


def control_line(rows: list[dict], difficulty: int, unit: str = "digit") -> str | None:
    """The last round's recipe against its control at `difficulty` (evaluation.control)."""
    last = next((r for r in reversed(rows) if difficulty in r.get("control", {})), None)
    if last is None or difficulty not in last.get("accuracy", {}):
        return None
    recipe, control = last["accuracy"][difficulty], last["control"][difficulty]
    name = f"{difficulty}-digit" if unit == "digit" else f"difficulty {difficulty}"
    return (
        f"{name} at {last['round']}: recipe {recipe:.1%}, control {control:.1%} "
        f"({(recipe - control) * 100:+.1f} points over the control)"
    )


def curve(rows: list[dict], difficulty: int, unit: str = "digit") -> str | None:
    accs = [(r["round"], r["accuracy"][difficulty]) for r in rows if difficulty in r.get("accuracy", {})]
    if len(accs) < 2:
        return None
    points = " -> ".join(f"{a:.1%}" for _, a in accs)
    gain = (accs[-1][1] - accs[0][1]) * 100
    name = f"{difficulty}-digit" if unit == "digit" else f"difficulty {difficulty}"
    return f"{name} held-out accuracy: {points} ({gain:+.1f} points from {accs[0][0]} to {accs[-1][0]})"


def frontier_summary(rows: list[dict], frontier: int | str, pool: list[int], unit: str = "digit") -> str | None:
    """One line per pool difficulty, the frontier first and marked; `unit` "digit"
    (arithmetic: difficulty = digit count) or anything else (a dataset's level)."""
    base: dict = next((r["accuracy"] for r in rows if r["round"] == "base"), {})
    front = pick_frontier(frontier, base, pool)
    order = ([front] if front is not None else []) + [d for d in frontier_candidates(pool, base) if d != front]
    lines = []
    for d in order:
        line = curve(rows, d, unit)
        if line:
            how = " (auto: hardest difficulty the base solves >= 10% of)" if frontier == "auto" else ""
            lines.append(("frontier " + line + how) if d == front else ("         " + line))
        against = control_line(rows, d, unit)
        if against:
            lines.append("         " + against)
    return "\n".join(lines) or None


def experiment_summary(cfg, rows: list[dict]) -> str | None:
    """frontier_summary with the experiment's frontier, pool and unit (run and status print it)."""
    scope = cfg.frontier_scope()
    return frontier_summary(rows, scope.frontier, scope.frontier_pool(), cfg.eval_task().plugin().caps.level_name)
