"""Progress lines in the Dagster run log for long loops (generation)."""

from __future__ import annotations

from selftaught.progress import Progress


def log_progress(context, label: str, every: float = 0.1):
    """A `progress(done, total)` callback: selftaught.progress updates (a terminal's progress
    bars), and a line in the run's log about every `every` of the total."""
    return Progress(label, 0, "prompts", every=every, line=context.log.info)
