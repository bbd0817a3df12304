"""Run untrusted programs against tests, one sandboxed process each.

Layers, outermost first (see filters/sandbox_launch.py and sandbox_runner.py):
  1. As root, a jail: new network, mount, PID and IPC namespaces; a minimal read-only
     root (pivot_root: /usr and the interpreter, a few devices, the jail's /proc, tmpfs
     /tmp and /dev/shm); an unprivileged uid of the run's own. Not root: the same jail in
     a user namespace, running as you without capabilities (else refused unless
     allow_unisolated).
  2. rlimits: CPU seconds, address space, processes (own uid), file size, open files, no core.
  3. Two processes: the program answers calls; the tests run in a checker process (another
     uid) that compares and reports, so expected values never reach the program.
  4. The parent: wall-clock deadline, stdout/stderr caps, then every process of the
     run's uids (or session) is killed. Minimal environment; no inherited fds.
  5. The guard in the program's process (human-eval style): a second layer only.

`run_tests` gives a `SandboxResult`; `run_many` runs many with bounded parallelism.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "sandbox_launch.py"
RUNNER_SOURCE = (HERE / "sandbox_runner.py").read_text()
UID_BASE = 61000  # sandbox uids: UID_BASE + slot; no passwd entry needed
CHECKER_UID_OFFSET = 1000  # the checker process of slot k runs as UID_BASE + 1000 + k


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 5
    memory_mb: int = 1024
    max_processes: int = 16
    disk_mb: int = 64
    max_output_bytes: int = 1 << 20
    allow_unisolated: bool = False  # no namespaces available (not root, no user namespaces): refuse unless True
    as_user: bool = False  # as root, take the path a non-root user gets (a user namespace): for tests
    # As root, launch as this uid with this interpreter: a real non-root user (tests; the
    # venv's python may sit under /root, which another uid cannot read).
    run_as_uid: int | None = None
    launch_python: str | None = None


def limits_from_config(b) -> Limits:
    """Limits from a `selftaught.config.SandboxConfig` (the config validates, this is what runs)."""
    return Limits(
        b.wall_seconds,
        b.cpu_seconds,
        b.memory_mb,
        b.max_processes,
        b.disk_mb,
        b.max_output_kb * 1024,
        b.allow_unisolated,
    )


@dataclass(frozen=True)
class TestResult:
    test: str
    passed: bool
    seconds: float
    error: str


@dataclass(frozen=True)
class SandboxResult:
    status: str  # passed | failed | error | timeout | output_limit | crashed | no_report | sandbox_error
    reason: str
    tests: tuple[TestResult, ...] = ()
    seconds: float = 0.0
    modes: str = ""
    stdout: str = ""
    stderr: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class _Slots:
    """Sandbox uids handed to concurrent runs, one each, so limits and clean-up stay per run."""

    count: int
    free: list[int] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self):
        self.free = list(range(self.count))

    def take(self) -> int:
        with self.lock:
            while not self.free:
                self.lock.wait()
            return self.free.pop()

    def give(self, slot: int) -> None:
        with self.lock:
            self.free.append(slot)
            self.lock.notify()


_SLOTS = _Slots(64)


def expected_tests(fmt: str, tests) -> int:
    """How many test statements the harness must report (counted here, outside the sandbox)."""
    from filters.sandbox_runner import _tests

    return sum(1 for _, _, setup in _tests({"format": fmt, "tests": tests}) if not setup)


def run_tests(
    program: str, tests, entry_point: str | None, fmt: str = "humaneval", limits: Limits = Limits()
) -> SandboxResult:
    """Run `program`, then `tests` (HumanEval: a check(candidate) source; MBPP: assert strings)."""
    try:
        want = expected_tests(fmt, tests)
    except (SyntaxError, ValueError) as exc:
        return SandboxResult("sandbox_error", f"tests do not parse: {exc}")
    slot = _SLOTS.take()
    try:
        return _run(program, tests, entry_point, fmt, limits, UID_BASE + slot, want)
    finally:
        _SLOTS.give(slot)


def _run(program, tests, entry_point, fmt, limits: Limits, uid: int, want: int) -> SandboxResult:
    other_uid = limits.run_as_uid if os.geteuid() == 0 else None
    root = os.geteuid() == 0 and not limits.as_user and other_uid is None
    workdir = None if root else tempfile.mkdtemp(prefix="selftaught-sandbox-")
    if workdir and other_uid is not None:
        os.chown(workdir, other_uid, other_uid)
    nonce = secrets.token_hex(16)
    nonce_r, nonce_w = os.pipe()
    os.write(nonce_w, nonce.encode())
    os.close(nonce_w)
    settings = {
        "uid": uid,
        "checker_uid": uid + CHECKER_UID_OFFSET,
        "workdir": workdir,
        "cpu_seconds": limits.cpu_seconds,
        "memory_mb": limits.memory_mb,
        "max_processes": limits.max_processes,
        "disk_mb": limits.disk_mb,
        "runner": RUNNER_SOURCE,
        "allow_unisolated": limits.allow_unisolated,
        "as_user": limits.as_user,
    }
    job = {"program": program, "tests": tests, "entry_point": entry_point, "format": fmt, "nonce_fd": nonce_r}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [limits.launch_python or sys.executable, "-I", str(LAUNCHER), json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            start_new_session=True,
            pass_fds=(nonce_r,),
            **({"user": other_uid, "group": other_uid, "extra_groups": []} if other_uid is not None else {}),
        )
    except OSError as exc:
        os.close(nonce_r)
        return SandboxResult("sandbox_error", f"could not start the sandbox: {exc}")
    os.close(nonce_r)
    try:
        out, err, why = _communicate(proc, json.dumps(job).encode(), limits)
    finally:
        _kill_all(proc, [uid, uid + CHECKER_UID_OFFSET] if root else [])
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - started
    return _verdict(proc.returncode, out, err, why, nonce, want, seconds)


def _communicate(proc, stdin: bytes, limits: Limits) -> tuple[bytes, bytes, str]:
    """Feed stdin, collect capped stdout/stderr until exit or the deadline."""
    try:
        proc.stdin.write(stdin)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    deadline = time.monotonic() + limits.wall_seconds
    bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    sel = selectors.DefaultSelector()
    for f in bufs:
        sel.register(f, selectors.EVENT_READ)
    why = ""
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            why = "timeout"
            break
        for key, _ in sel.select(timeout=min(left, 0.5)):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            bufs[key.fileobj] += chunk
            if len(bufs[key.fileobj]) > limits.max_output_bytes:
                why = "output_limit"
                break
        if why:
            break
    sel.close()
    if not why:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            why = "timeout"
    return bytes(bufs[proc.stdout]), bytes(bufs[proc.stderr]), why


def _kill_all(proc, uids: list[int]) -> None:
    """Kill the run's process group, and as root every process of its uids (daemons that left the group)."""
    for _ in range(3):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        left = [pid for uid in uids for pid in _pids_of_uid(uid)]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not left:
            break
        time.sleep(0.05)
    proc.wait()
    for f in (proc.stdout, proc.stderr):
        f.close()


def _pids_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid == uid:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _verdict(
    code: int | None, out: bytes, err: bytes, why: str, nonce: str, want: int, seconds: float
) -> SandboxResult:
    stdout, stderr = out.decode(errors="replace")[-2000:], err.decode(errors="replace")[-2000:]
    keep = {"seconds": round(seconds, 4), "stdout": stdout, "stderr": stderr}
    if why == "timeout":
        return SandboxResult("timeout", "wall-clock limit reached", **keep)
    if why == "output_limit":
        return SandboxResult("output_limit", "output over the cap", **keep)
    if code == 120 and "sandbox-launch-error" in stderr:
        return SandboxResult("sandbox_error", stderr.strip().splitlines()[-1], **keep)
    report = [line.split("\t") for line in out.decode(errors="replace").splitlines() if line.startswith(nonce + "\t")]
    if not report or report[0][1] != "REPORT":
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            cpu = " (CPU limit)" if -code in (signal.SIGXCPU, signal.SIGKILL) else ""
            return SandboxResult("crashed", f"killed by {name}{cpu}", **keep)
        last = stderr.strip().splitlines()[-1:] or ["no output"]
        return SandboxResult("no_report", f"exited {code} without a test report: {last[0][:200]}", **keep)
    _, _, error, modes = (report[0] + ["", ""])[:4]
    tests = tuple(TestResult(_unclean(r[4]), r[2] == "1", float(r[3]), _unclean(r[5])) for r in report[1:])
    keep["modes"] = modes
    killed = _PROGRAM_EXIT.search(stderr)
    memory = _MEMORY_LIMIT.search(stderr)
    if memory and (error or not all(t.passed for t in tests)):
        return SandboxResult(
            "crashed", f"the program's processes held more than {memory[1]} MB together (memory limit)", tests, **keep
        )
    if killed and int(killed[1]) < 0 and (error or not all(t.passed for t in tests)):
        sig = -int(killed[1])
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        cpu = " (CPU limit)" if sig in (signal.SIGXCPU, signal.SIGKILL) else ""
        return SandboxResult("crashed", f"the program was killed by {name}{cpu}", tests, **keep)
    if error:
        return SandboxResult("error", _unclean(error), tests, **keep)
    if len(report) - 1 != want or any(r[1] != "TEST" for r in report[1:]):
        return SandboxResult("no_report", f"report has {len(report) - 1} test lines, expected {want}", tests, **keep)
    failed = [t for t in tests if not t.passed]
    if failed:
        return SandboxResult(
            "failed",
            f"{len(failed)}/{len(tests)} tests failed; first: {failed[0].test[:120]} -> {failed[0].error[:120]}",
            tests,
            **keep,
        )
    return SandboxResult("passed", f"{len(tests)} tests passed", tests, **keep)


_PROGRAM_EXIT = re.compile(r"sandbox-program-exit\t(-?\d+)")
_MEMORY_LIMIT = re.compile(r"sandbox-memory-limit\t(\d+)")


def _unclean(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")


def run_many(
    jobs: list[dict],
    workers: int | None = None,
    limits: Limits = Limits(),
    progress: Callable[[int, int], None] | None = None,
) -> list[SandboxResult]:
    """`run_tests(**job)` for each job, `workers` at a time (default: CPU count)."""
    workers = workers or os.cpu_count() or 1
    results: list[SandboxResult | None] = [None] * len(jobs)
    done = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal done
        results[i] = run_tests(limits=limits, **jobs[i])
        with lock:
            done += 1
            if progress:
                progress(done, len(jobs))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(len(jobs))))
    return results


def isolation_report() -> str:
    """What this machine's sandbox provides, from a real run (for logs and the README)."""
    r = run_tests("def f():\n    return 1\n", "def check(candidate):\n    assert candidate() == 1\n", "f")
    return r.modes if r.passed else f"sandbox broken: {r.status}: {r.reason}"
