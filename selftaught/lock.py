"""One experiment per storage root, one writer at a time.

- `claim_root`: a storage root belongs to the experiment that first wrote there
  (`<root>/experiment.json`); another experiment name is refused, since both would
  write the same `tables/` and `models/` files.
- `ExperimentLock`: an exclusive `fcntl.flock` on `<root>/.selftaught.lock`, taken by
  `selftaught run` for its whole invocation and by every step of a Dagster run (UI,
  schedule, sensor) while it executes. The kernel drops the lock when its holder dies,
  so a killed run never leaves a stale lock. The file holds who has it (what, pid, host,
  since) for the message the next one gets. Re-entrant within a process: the CLI's
  in-process steps run under the CLI's lock.

For an object-store root the lock file is in the local mirror: it keeps apart the runs
that share this machine's cache, not runs on other machines.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".selftaught.lock"
OWNER_FILE = "experiment.json"

_held: dict[str, list] = {}  # lock path -> [fd, depth] held by this process
_guard = threading.Lock()


class ExperimentBusy(RuntimeError):
    """Another process is running this experiment."""


class RootTaken(ValueError):
    """The storage root belongs to another experiment."""


def _describe(info: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"{info.get('what', 'a run')} (pid {info.get('pid', '?')} on {info.get('host', '?')}, since {since})"


class ExperimentLock:
    def __init__(self, root: str | Path, experiment: str):
        self.path = Path(root) / LOCK_FILE
        self.experiment = experiment

    def acquire(self, what: str, run_id: str | None = None) -> bool:
        """Take the lock now or raise ExperimentBusy naming its holder; `what` says who
        holds it in that message (e.g. "selftaught run, round r002"). A step of the Dagster
        run `run_id` that holds it (steps of one run may execute in parallel processes)
        goes ahead without it: returns False then, True when this process holds it."""
        key = str(self.path.resolve())
        with _guard:
            if key in _held:
                _held[key][1] += 1
                return True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = self._read(fd)
                os.close(fd)
                if run_id is not None and info.get("run_id") == run_id:
                    return False
                raise ExperimentBusy(
                    f"experiment {self.experiment} is already running: {_describe(info)}. Rounds never overlap: "
                    "wait for it to finish (or stop it), then run again") from None
            _held[key] = [fd, 1]
            self._write(fd, what, run_id)
            return True

    def note(self, what: str, run_id: str | None = None) -> None:
        """Update what the holder (this process) is doing, e.g. the round it moved on to."""
        entry = _held.get(str(self.path.resolve()))
        if entry:
            self._write(entry[0], what, run_id)

    def release(self) -> None:
        key = str(self.path.resolve())
        with _guard:
            entry = _held.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                os.close(entry[0])  # closing the descriptor drops the flock

    @contextmanager
    def hold(self, what: str, run_id: str | None = None):
        held = self.acquire(what, run_id)
        try:
            yield self
        finally:
            if held:
                self.release()

    def holder(self) -> dict | None:
        """Who holds the lock now (None when nobody does)."""
        if not self.path.is_file():
            return None
        if str(self.path.resolve()) in _held:
            return self._read(_held[str(self.path.resolve())][0])
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return self._read(fd)
        finally:
            os.close(fd)
        return None

    @staticmethod
    def _read(fd: int) -> dict:
        try:
            return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _write(fd: int, what: str, run_id: str | None = None) -> None:
        data = json.dumps({"what": what, "pid": os.getpid(), "host": socket.gethostname(),
                           "since": time.time(), "run_id": run_id}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)


def claim_root(store, experiment: str) -> None:
    """Record `experiment` as the owner of the store's root, or raise RootTaken if another
    experiment owns it. Roots written before this record existed are claimed as they are."""
    path = store.root / OWNER_FILE
    if store.remote:
        store.remote.pull_file(OWNER_FILE, path)
    if path.is_file():
        try:
            owner = json.loads(path.read_text()).get("experiment")
        except (OSError, ValueError):
            owner = None
        if owner == experiment:
            return
        if owner is not None:
            raise RootTaken(f"storage root {store.location()} belongs to experiment {owner!r} (recorded in "
                            f"{store.where(path)}); experiment {experiment!r} would overwrite its tables and "
                            "models: give it a storage_root of its own")
    store.write_file(json.dumps({"experiment": experiment, "claimed": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                   time.gmtime())}).encode(),
                     OWNER_FILE)
