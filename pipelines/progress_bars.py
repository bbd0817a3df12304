"""Progress bars for `selftaught run` in a terminal: selftaught.progress records as tqdm bars,
one per stage (generation, verification, training, evaluation), closed when it completes.
Not a terminal (CI, a pipe): nothing changes, the INFO lines are printed as before."""

from __future__ import annotations

import logging

from selftaught.progress import LOGGER


class ProgressBars(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.bars: dict = {}

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        fields = getattr(record, "progress", None)
        if fields is None:  # a line: the bars show the way there, the last one stays
            if not getattr(record, "progress_line", False):
                tqdm.write(record.getMessage())
            return
        stage, done, total = fields["stage"], fields["done"], fields["total"]
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(
                total=total or None, desc=stage, unit=f" {fields['unit']}", leave=False, dynamic_ncols=True
            )
        if total and bar.total != total:
            bar.total = total
        extra = {k: v for k, v in fields.items() if k not in ("stage", "done", "total", "unit")}
        if extra:
            bar.set_postfix(extra, refresh=False)
        bar.update(done - bar.n)
        if total and done >= total:
            bar.close()
            del self.bars[stage]

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
        super().close()


class LinesAboveBars(logging.StreamHandler):
    """A log handler that writes its lines above the bars instead of through them."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        if not getattr(record, "progress_line", False):  # what a bar already shows
            tqdm.write(self.format(record))


def show_progress_bars() -> ProgressBars:
    """Route selftaught.progress to bars on this terminal (call only when stderr is a TTY), and
    the other log lines above them."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if type(h) is logging.StreamHandler]:
        lines = LinesAboveBars()
        lines.setFormatter(old.formatter)
        root.removeHandler(old)
        root.addHandler(lines)
    handler = ProgressBars()
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.DEBUG)
    LOGGER.propagate = False
    return handler
