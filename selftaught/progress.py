"""Progress of a round's long loops: generation, verification, training, evaluation.

One channel, the `selftaught.progress` logger, for every front end: each update is a DEBUG
record carrying (stage, done, total, unit), and about every tenth of the way (and at the end)
an INFO line such as "r001-samples: 450/900 prompts (5.2/s)". A terminal `selftaught run`
turns the records into progress bars (pipelines/progress_bars.py) and drops the INFO lines a
bar replaces (marked `progress_line`; the last one stays); anything else (CI logs, a pipe,
the Dagster UI) sees the INFO lines only.
"""

from __future__ import annotations

import logging
import time

LOGGER = logging.getLogger("selftaught.progress")


class Progress:
    """`Progress("r001 samples", 7200, "prompts")(done)` after each step of a loop."""

    def __init__(self, stage: str, total: int, unit: str = "items", every: float = 0.1, line=None):
        self.stage, self.total, self.unit, self.every = stage, total, unit, every
        self.line = line  # also send the INFO lines here (a Dagster run's log)
        self.t0, self.next = time.monotonic(), every

    def __call__(self, done: int, total: int | None = None, **extra) -> None:
        if total is not None:
            self.total = total
        fields = {"stage": self.stage, "done": done, "total": self.total, "unit": self.unit, **extra}
        LOGGER.debug("%s: %d/%d", self.stage, done, self.total, extra={"progress": fields})
        if self.total and (done / self.total >= self.next or done >= self.total):
            rate = done / max(time.monotonic() - self.t0, 1e-9)
            shown = "".join(f" {k} {v:.4f}" if isinstance(v, float) else f" {k} {v}" for k, v in extra.items())
            message = f"{self.stage}: {done}/{self.total} {self.unit}{shown} ({rate:.1f}/s)"
            LOGGER.info(message, extra={"progress_line": done < self.total})
            if self.line is not None:
                self.line(message)
            self.next = done / self.total + self.every
