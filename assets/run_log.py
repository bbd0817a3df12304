"""Progress lines in the Dagster run log for long loops (generation)."""

from __future__ import annotations

import time


def log_progress(context, label: str, every: float = 0.1):
    """A `progress(done, total)` callback that logs about every `every` of the total."""
    state = {"next": every, "t0": time.monotonic()}

    def progress(done: int, total: int) -> None:
        if total and (done / total >= state["next"] or done == total):
            rate = done / max(time.monotonic() - state["t0"], 1e-9)
            context.log.info(f"{label}: {done}/{total} prompts ({rate:.1f}/s)")
            state["next"] = done / total + every

    return progress
