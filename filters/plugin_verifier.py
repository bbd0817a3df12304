"""User verifiers (selftaught.plugins): a function or a class, run in a worker process.

The three forms a verifier can take, told apart by signature when the config loads:

    def json_match(prompt, completion, reference, **row) -> bool | float | None | Check   # per sample
    def reward(prompts, completions, **columns) -> list[float | None]   # per batch: a TRL reward function
    class Checker: check(prompt, completion, reference) / check_batch(prompts, completions, references, prompt_ids)

Whatever it returns becomes a verdict: True correct, False incorrect, None unverifiable, a
number a score (correct at or above the threshold, which is also the GRPO reward), a
`(value, reason)` pair, or a `Check`. `**row` / `**columns` receive every column of the
task's row (a dataset task's source columns: structured references, units, test lists).

Faults at run time are rows, never a crashed round: an exception, a wrong type, a list of the
wrong length, a batch over `verification.plugin.timeout_seconds` or a worker that dies make
those rows `unverifiable` with the reason, and the round's blocking check stops it when
too many are. The worker (filters/plugin_worker.py) runs the code in its own process, so a
hang is killed and the pipeline's own state is out of its reach; `isolated: false` calls it
in this process instead (no timeout; for debugging).
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, cast

import polars as pl

from selftaught.plugins import SAMPLE_ARGS, Adapted, Check, Plugin, PluginError, adapt
from selftaught.procs import python_env
from selftaught.schemas import CORRECT, INCORRECT, UNVERIFIABLE, VERDICTS

DEFAULT_THRESHOLD = 1.0


# ---- calling it ---------------------------------------------------------------------------------------


def to_check(value: Any, threshold: float) -> Check:
    """One returned value as a verdict (see the module docstring)."""
    reason = None
    if isinstance(value, Check):
        if value.verdict not in VERDICTS:
            return Check(
                UNVERIFIABLE, 0.0, None, f"the verifier returned the verdict {value.verdict!r}, not one of {VERDICTS}"
            )
        return value
    if isinstance(value, tuple) and len(value) == 2 and (value[1] is None or isinstance(value[1], str)):
        value, reason = value
    if value is None:
        return Check(UNVERIFIABLE, 0.0, None, reason or "the verifier returned None (cannot tell)")
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's too
        ok = bool(value)
        return Check(
            CORRECT if ok else INCORRECT, 1.0 if ok else 0.0, None, reason or ("correct" if ok else "incorrect")
        )
    if isinstance(value, (int, float)) or type(value).__module__ == "numpy":
        try:
            score = float(value)
        except (TypeError, ValueError):
            score = None
        if score is not None:
            if not math.isfinite(score):
                return Check(UNVERIFIABLE, 0.0, None, f"the verifier returned a non-finite score ({score})")
            ok = score >= threshold
            return Check(
                CORRECT if ok else INCORRECT,
                score,
                None,
                reason or f"score {score:g} ({'>=' if ok else '<'} threshold {threshold:g})",
            )
    return Check(
        UNVERIFIABLE,
        0.0,
        None,
        f"the verifier returned {type(value).__name__}, expected bool, a number, None, (value, reason) or a Check",
    )


def _error(exc: BaseException) -> str:
    return f"verifier error: {type(exc).__name__}: {str(exc)[:300]}"


def _columns(row: str | None) -> dict:
    if not row:
        return {}
    try:
        value = json.loads(row)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def run_batch(adapted: Adapted, batch: dict, threshold: float) -> list[Check]:
    """`batch` (prompts, completions, references, prompt_ids, rows) judged by the user's code."""
    n = len(batch["completions"])
    rows = [_columns(r) for r in batch.get("rows") or [None] * n]
    if adapted.mode == "row":
        out = []
        for p, c, ref, row in zip(batch["prompts"], batch["completions"], batch["references"], rows):
            kw = {
                k: v
                for k, v in row.items()
                if k not in SAMPLE_ARGS and (adapted.keywords is None or k in adapted.keywords)
            }
            try:
                out.append(to_check(adapted.call(p, c, ref, **kw), threshold))
            except Exception as exc:  # noqa: BLE001 -- one bad row must not sink the round
                out.append(Check(UNVERIFIABLE, 0.0, None, _error(exc)))
        return out
    if adapted.mode == "object":
        out = []
        for p, c, ref in zip(batch["prompts"], batch["completions"], batch["references"]):
            try:
                out.append(to_check(adapted.call(p, c, ref), threshold))
            except Exception as exc:  # noqa: BLE001
                out.append(Check(UNVERIFIABLE, 0.0, None, _error(exc)))
        return out
    try:
        if adapted.mode == "object_batch":
            values = adapted.call(
                list(batch["prompts"]), list(batch["completions"]), list(batch["references"]), list(batch["prompt_ids"])
            )
        else:
            columns = {"reference": list(batch["references"]), "prompt_id": list(batch["prompt_ids"])}
            for key in sorted({k for row in rows for k in row}):
                columns.setdefault(key, [row.get(key) for row in rows])
            kw = {"prompts": list(batch["prompts"]), "completions": list(batch["completions"]), **columns}
            if adapted.keywords is not None:
                kw = {k: v for k, v in kw.items() if k in adapted.keywords or k in ("prompts", "completions")}
            values = adapted.call(**kw)
    except Exception as exc:  # noqa: BLE001 -- a broken batch is unverifiable, row by row
        return [Check(UNVERIFIABLE, 0.0, None, _error(exc))] * n
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        return [
            Check(
                UNVERIFIABLE, 0.0, None, f"the verifier returned {type(values).__name__}, expected a list of {n} values"
            )
        ] * n
    values = list(values)
    if len(values) != n:
        return [Check(UNVERIFIABLE, 0.0, None, f"the verifier returned {len(values)} values for {n} completions")] * n
    return [to_check(v, threshold) for v in values]


def check_to_json(c: Check) -> list:
    return [c.verdict, c.reward, c.extracted_answer, c.reason, c.rationale_ok, c.parsed_reference, c.details]


def check_from_json(row: list) -> Check:
    verdict, reward, extracted, reason, ok, parsed, details = row
    return Check(
        verdict,
        float(reward),
        None if extracted is None else str(extracted),
        str(reason),
        None if ok is None else bool(ok),
        None if parsed is None else str(parsed),
        None if details is None else str(details),
    )


# ---- the worker process ------------------------------------------------------------------------------


class WorkerDied(RuntimeError):
    pass


class Worker:
    """A `python -m filters.plugin_worker` process that loaded one verifier; one JSON line per
    request and per answer on its stdin / stdout (its own prints go to a log file)."""

    def __init__(self, plugin: Plugin, options: dict, threshold: float):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="selftaught-verifier-", suffix=".log", delete=False)
        # the worker imports what this process can: its sys.path, not only the environment's
        path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "filters.plugin_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=python_env({"PYTHONPATH": path}),
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        self.buffer = ""
        self.request({"load": plugin.load, "options": options, "threshold": threshold, "spec": plugin.spec}, 120.0)

    def request(self, message: dict, timeout: float) -> dict:
        stdin, stdout = cast(IO[str], self.proc.stdin), cast(IO[str], self.proc.stdout)  # both PIPE
        try:
            stdin.write(json.dumps(message) + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerDied(self._death()) from None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            while "\n" not in self.buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError
                chunk = os.read(stdout.fileno(), 1 << 20).decode("utf-8", "replace")
                if not chunk:
                    raise WorkerDied(self._death())
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition("\n")
        answer = json.loads(line)
        if "fatal" in answer:
            raise PluginError(answer["fatal"])
        return answer

    def _death(self) -> str:
        code = self.proc.wait(timeout=5)
        self.log.seek(0)
        tail = [line for line in self.log.read().splitlines() if line.strip()][-3:]
        how = f"signal {-code}" if code is not None and code < 0 else f"exit {code}"
        return f"the verifier process died ({how})" + (f": {' | '.join(tail)[:300]}" if tail else "")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                cast(IO[str], stream).close()  # both PIPE
            except OSError:
                pass
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


# ---- the verifier -------------------------------------------------------------------------------------


class PluginVerifier:
    """A user verifier with the built-ins' interface (filters.verifiers.Verifier)."""

    reads_rows = True  # filters.verifiers.verify passes each prompt's fields

    def __init__(self, plugin: Plugin, settings=None):
        p = getattr(settings, "plugin", None)
        self.plugin, self.name, self.version = plugin, plugin.name, plugin.origin.tag()
        threshold = p.threshold if p is not None and p.threshold is not None else plugin.caps.threshold
        self.threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        self.timeout = p.timeout_seconds if p is not None else 60.0
        self.batch_size = p.batch_size if p is not None else 256
        self.isolated = p.isolated if p is not None else True
        self.options = dict(p.options) if p is not None else {}
        # a bad signature fails here, in this process; made (make=True), so never None
        self.adapted = cast(Adapted, adapt(plugin.obj, plugin.spec, self.options))
        self._worker: Worker | None = None

    def check(self, prompt: str, completion: str, reference: str) -> Check:
        return self.check_batch([prompt], [completion], [reference], ["-"])[0]

    def check_batch(self, prompts, completions, references, prompt_ids, rows=None, progress=None) -> list[Check]:
        n = len(completions)
        rows = list(rows) if rows is not None else [None] * n
        out: list[Check | None] = [None] * n
        done = 0
        for idx in self._chunks(prompt_ids):
            batch = {
                "prompts": [prompts[i] for i in idx],
                "completions": [completions[i] for i in idx],
                "references": [references[i] for i in idx],
                "prompt_ids": [prompt_ids[i] for i in idx],
                "rows": [rows[i] for i in idx],
            }
            for i, c in zip(idx, self._run(batch)):
                out[i] = c
            done += len(idx)
            if progress is not None:
                progress(done)
        return cast(list[Check], out)  # every index is in one chunk

    def _chunks(self, prompt_ids) -> list[list[int]]:
        """Batches of at most batch_size samples that never split a prompt's samples (a group
        check such as a majority vote sees all of them)."""
        groups: dict[str, list[int]] = {}
        for i, pid in enumerate(prompt_ids):
            groups.setdefault(pid, []).append(i)
        chunks: list[list[int]] = []
        current: list[int] = []
        for idx in groups.values():
            if current and len(current) + len(idx) > self.batch_size:
                chunks.append(current)
                current = []
            current = current + idx
        return chunks + ([current] if current else [])

    def _run(self, batch: dict) -> list[Check]:
        n = len(batch["completions"])
        if not self.isolated:
            return run_batch(self.adapted, batch, self.threshold)
        try:
            if self._worker is None:
                self._worker = Worker(self.plugin, self.options, self.threshold)
            answer = self._worker.request({"batch": batch}, self.timeout)
        except TimeoutError:
            self.close()
            return [
                Check(
                    UNVERIFIABLE,
                    0.0,
                    None,
                    f"verifier timed out: a batch of {n} took over "
                    f"{self.timeout:g} s (verification.plugin.timeout_seconds)",
                )
            ] * n
        except WorkerDied as exc:
            self.close()
            return [Check(UNVERIFIABLE, 0.0, None, str(exc))] * n
        checks = [check_from_json(r) for r in answer["checks"]]
        if len(checks) != n:
            return [Check(UNVERIFIABLE, 0.0, None, "the verifier process answered for another batch")] * n
        return checks

    def second_opinion(self, correct: pl.DataFrame) -> pl.DataFrame:
        """The same check again in a fresh process: a checker that is not deterministic (or
        keeps state between calls) disagrees with itself."""
        again = PluginVerifier.__new__(PluginVerifier)
        again.__dict__.update({**self.__dict__, "_worker": None})
        try:
            rows = correct["fields"].to_list() if "fields" in correct.columns else None
            out = again.check_batch(
                correct["prompt"].to_list(),
                correct["completion"].to_list(),
                correct["reference"].to_list(),
                correct["prompt_id"].to_list(),
                rows=rows,
            )
        finally:
            again.close()
        judged = correct.with_columns(
            pl.Series("second_verdict", [c.verdict for c in out], pl.String),
            pl.Series("second_reason", [c.reason for c in out], pl.String),
        )
        return judged.filter(pl.col("second_verdict") != CORRECT).with_columns(
            (pl.lit("re-checked: ") + pl.col("second_reason")).alias("reason")
        )

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- interpreter shutdown
            pass
