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
                    "wait for it to finish (or stop it), then run again"
                ) from None
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
        data = json.dumps(
            {"what": what, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "run_id": run_id}
        ).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)


def _owner(path: Path) -> str | None:
    """The experiment recorded in an owner file; None when there is none; "" when it is unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("experiment") or ""
    except (OSError, ValueError, AttributeError):
        return ""


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Write `path` whole if it does not exist, in one atomic step (link of a finished temp
    file); False when another process made it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def root_owner(store) -> str | None:
    """The experiment that owns the store's root, or None (unclaimed or unreadable)."""
    path = store.root / OWNER_FILE
    if store.remote:
        store.remote.pull_file(OWNER_FILE, path)
    return _owner(path) or None


def check_root_owner(store, experiment: str) -> None:
    """RootTaken when the root belongs to another experiment: commands that only read (status,
    lineage, diff, ledger, export) must not show its data as this config's."""
    owner = root_owner(store)
    if owner is not None and owner != experiment:
        raise RootTaken(
            f"storage root {store.location()} belongs to experiment {owner!r}, not {experiment!r} "
            "(this config's name): pass that experiment's config, or fix storage_root"
        )


def claim_root(store, experiment: str) -> None:
    """Record `experiment` as the owner of the store's root, or raise RootTaken if another
    experiment owns it. Roots written before this record existed are claimed as they are.
    Two experiments claiming a fresh root at once: the owner file is created in one atomic
    step, so exactly one wins and the other is refused."""
    path = store.root / OWNER_FILE
    if store.remote:
        store.remote.pull_file(OWNER_FILE, path)
    record = json.dumps(
        {"experiment": experiment, "claimed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    ).encode()
    while True:
        owner = _owner(path)
        if owner == experiment:
            return
        if owner:
            raise RootTaken(
                f"storage root {store.location()} belongs to experiment {owner!r} (recorded in "
                f"{store.where(path)}); experiment {experiment!r} would overwrite its tables and "
                "models: give it a storage_root of its own"
            )
        if owner == "":  # damaged: the experiment that runs here now claims it
            store.write_file(record, OWNER_FILE)
            return
        if _create_exclusive(path, record):
            if store.remote:
                store.write_file(record, OWNER_FILE)  # the upload
            return
        # another process created it between our read and our create: read whose it is


def claim_key_prefix(home: Path, experiment: str, location: str) -> None:
    """One experiment per asset-key prefix in a Dagster home (<home>/experiments.json): names
    that differ only by - and _ share a prefix, and one name on two storage roots would share
    the asset records and runs while writing different files. RootTaken names the clash."""
    from selftaught.round_keys import key_prefix

    prefix = key_prefix(experiment)
    registry = Path(home) / "experiments.json"
    with open(Path(home) / ".experiments.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            known = json.loads(registry.read_text()) if registry.is_file() else {}
        except (OSError, ValueError):
            known = {}
        mine = known.get(prefix)
        if mine is not None and mine.get("experiment") != experiment:
            raise RootTaken(
                f"experiments {mine.get('experiment')!r} and {experiment!r} would share the asset keys "
                f"{prefix}/... in the Dagster home {home} (names that differ only by - and _ are one "
                "prefix): rename one, or give it its own --dagster-home"
            )
        if mine is not None and mine.get("root") != location:
            raise RootTaken(
                f"experiment {experiment!r} in the Dagster home {home} keeps its data at "
                f"{mine.get('root')}; a second {experiment!r} at {location} would share its runs and "
                "asset records: rename it, or give it its own --dagster-home (moved the data? edit "
                f"{registry})"
            )
        if mine is None:
            known[prefix] = {"experiment": experiment, "root": location}
            from selftaught.files import write_text_atomic

            write_text_atomic(json.dumps(known, indent=1, sort_keys=True), registry)
