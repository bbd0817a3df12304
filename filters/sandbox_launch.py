"""Sandbox launcher: the first process of a sandboxed run (see filters/sandbox.py).

    python -I filters/sandbox_launch.py '<json settings>'

Run as root it builds a jail and runs the harness in it:

- new network, mount, PID and IPC namespaces: no interface up (no network, not even
  loopback, and no abstract unix sockets); only the run's own processes are visible
  (`/proc` is the jail's); SysV shared memory lives and dies with the run, capped at
  `memory_mb` by the namespace's own shmmax/shmall;
- a minimal read-only root (pivot_root): /usr and the interpreter's prefix bound
  read-only, /dev with null, zero, full, random and urandom only, a fresh /proc, and a
  size-capped tmpfs on /tmp and /dev/shm as the only writable places. No host file is
  there: not /etc, /home, /root, /run, /var, the checkout or its data, and no
  filesystem socket;
- PID 1 of the namespace is this launcher: it forks the harness (under the run's own
  unprivileged uid, with rlimits) and waits; when it exits, the kernel kills whatever
  the program left behind.

Not root, it builds the same jail inside a user namespace (mapped to the user, every
capability dropped before exec); where the kernel allows none, it refuses unless
allow_unisolated, and then only rlimits and the guard remain (working directory: the
parent's temporary folder). Standard library only: it must not import the project.
"""

import ctypes
import json
import os
import resource
import signal
import sys
import threading
import time

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
CLONE_NEWIPC, CLONE_NEWPID = 0x08000000, 0x20000000
MNT_DETACH = 2
INODES_PER_MB = 256  # files the jail's /tmp may hold per MB of disk_mb (64 MB: 16,384 files)
PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS = 28, 38
SECURE_NOROOT = 0b1111  # SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP, and both locked
DEVICES = ("null", "zero", "full", "random", "urandom")
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = (
    1,
    2,
    4,
    32,
    4096,
    8192,
    1 << 14,
    1 << 18,
)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _unshare(libc, flags: int) -> bool:
    return libc.unshare(flags) == 0


def _mount(libc, src, target, fstype, flags, opts=None) -> None:
    enc = lambda v: v.encode() if isinstance(v, str) else v  # noqa: E731
    if libc.mount(enc(src), enc(target), enc(fstype), flags, enc(opts)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} on {target}: {os.strerror(err)}")


# statvfs flags -> mount flags that a remount must keep (in a user namespace the kernel
# refuses to clear flags the original mount had: they are locked)
_KEPT = (
    (os.ST_NODEV, 4),
    (os.ST_NOEXEC, 8),
    (os.ST_NOATIME, 1024),
    (os.ST_NODIRATIME, 2048),
    (os.ST_RELATIME, 1 << 21),
)


def _read_only(libc, target: str) -> None:
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
    held = os.statvfs(target).f_flag
    for st, ms in _KEPT:
        if held & st:
            flags |= ms
    _mount(libc, None, target, None, flags)


def _bind(libc, src: str, target: str, read_only: bool = True) -> None:
    if os.path.isdir(src):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(libc, src, target, None, MS_BIND | MS_REC)
    if read_only:
        _read_only(libc, target)


def build_jail(libc, s: dict) -> list[str]:
    """The minimal root (see the module docstring), entered with pivot_root; runs as PID 1
    of the new PID namespace, in the new mount namespace. Returns extra modes."""
    prefix = os.path.realpath(sys.base_prefix)
    keep = os.open(prefix, os.O_PATH | os.O_DIRECTORY)  # reachable even if /tmp holds it
    new = "/tmp"  # a mount point of this namespace only: the host's /tmp is untouched
    _mount(libc, "tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for top in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = "/" + top
        if os.path.islink(host):
            os.symlink(os.readlink(host), f"{new}/{top}")  # merged /usr: lib -> usr/lib
        elif os.path.isdir(host):
            _bind(libc, host, f"{new}/{top}")
    if not any(prefix == d or prefix.startswith(d + "/") for d in ("/usr", "/bin", "/lib", "/lib64")):
        _bind(libc, f"/proc/self/fd/{keep}", new + prefix)
    os.close(keep)
    for name in DEVICES:
        _bind(libc, f"/dev/{name}", f"{new}/dev/{name}", read_only=False)
    for writable in ("tmp", "dev/shm"):
        os.makedirs(f"{new}/{writable}", exist_ok=True)
        _mount(
            libc,
            "tmpfs",
            f"{new}/{writable}",
            "tmpfs",
            MS_NOSUID | MS_NODEV,
            f"size={s['disk_mb']}m,nr_inodes={s['disk_mb'] * INODES_PER_MB},mode=1777",
        )
    os.makedirs(f"{new}/proc")
    modes = ["minimal-root"]
    try:
        _mount(libc, "proc", f"{new}/proc", "proc", MS_NOSUID | MS_NODEV | 8)  # 8 = MS_NOEXEC
    except OSError:  # a user namespace under a container's masked /proc may not mount one: go without
        modes.append("no-proc")
    os.makedirs(f"{new}/etc")
    os.makedirs(f"{new}/.old")
    if libc.syscall(155, new.encode(), f"{new}/.old".encode()) != 0:  # pivot_root (x86_64)
        raise OSError(ctypes.get_errno(), f"pivot_root: {os.strerror(ctypes.get_errno())}")
    os.chdir("/")
    if libc.umount2(b"/.old", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "detaching the old root failed")
    os.rmdir("/.old")
    _read_only(libc, "/")
    try:  # this IPC namespace's own limits: SysV shared memory counts against memory_mb
        limit_bytes = s["memory_mb"] << 20
        for name, value in (("shmmax", limit_bytes), ("shmall", limit_bytes // 4096), ("shmmni", 16)):
            with open(f"/proc/sys/kernel/{name}", "w") as f:
                f.write(str(value))
        modes.append("shm-capped")
    except OSError:
        pass  # a read-only /proc/sys: the segments still die with the namespace
    os.chdir("/tmp")
    return modes


def _map_to_self(uid: int, gid: int) -> None:
    """In a new user namespace: be its root, mapped to the user who started it."""
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def isolate(s: dict) -> list[str]:
    """Namespaces and working directory; returns the isolation modes in effect. With a
    jail, the calling process stays outside (it waits and passes on the exit status) and
    this returns in PID 1 of the jail. As root the jail's processes get uids of their own;
    not root, the jail is built in a user namespace (where the kernel allows one) and its
    processes run as you, without capabilities."""
    libc, modes = _libc(), []
    jail = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC
    if s["host_root"]:
        if not _unshare(libc, jail):
            raise OSError(ctypes.get_errno(), "unshare(mount|net|pid|ipc) failed")
    else:
        uid, gid = os.geteuid(), os.getegid()
        if _unshare(libc, CLONE_NEWUSER | jail):
            _map_to_self(uid, gid)
            modes.append("userns")
        elif not s.get("allow_unisolated"):
            raise OSError(
                1,
                "no process isolation here (not root, and user namespaces are not available): "
                "model-written code would run with rlimits and the harness's guard only. Run as root "
                "(e.g. in a container), or set verification.sandbox.allow_unisolated: true to accept that",
            )
        else:
            os.chdir(s["workdir"])
            return ["unisolated", "workdir"]
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "making / private failed")
    init = os.fork()  # the first child is PID 1 of the new PID namespace
    if init:
        _, status = os.waitpid(init, 0)
        code = os.waitstatus_to_exitcode(status)
        if code > 128:  # the harness died by signal code - 128: die the same way, for the verdict
            if code - 128 not in (signal.SIGKILL, signal.SIGSTOP):  # these have no handler to reset
                signal.signal(code - 128, signal.SIG_DFL)
            os.kill(os.getpid(), code - 128)
        os._exit(code if code >= 0 else 128 - code)
    s["modes"] = modes  # limit() reads whether the user namespace is in effect
    modes += ["netns", "pidns", "ipcns", *build_jail(libc, s)]
    modes.append(f"uid-{s['uid']}" if s["host_root"] else "same-uid")
    return modes + ["split-checker"] + (["seccomp"] if _seccomp_works(libc) else [])


# In the user namespace the harness's own processes share the run's uid: the launcher, PID 1
# of the jail and the checker (which may use 4) count against RLIMIT_NPROC with the program's.
HARNESS_PROCESSES = 7


def _nproc_per_user_namespace() -> bool:
    """Linux >= 5.14 counts RLIMIT_NPROC per user namespace (ucounts); before, per user across
    the machine, where a cap of 16 would stop a program of a user who runs 16 other processes."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 14)


def limit(s: dict, processes: int) -> None:
    cpu = int(s["cpu_seconds"])
    limits = [
        ("RLIMIT_CPU", (cpu, cpu + 1)),
        ("RLIMIT_AS", (s["memory_mb"] << 20,) * 2),
        ("RLIMIT_FSIZE", (s["disk_mb"] << 20,) * 2),
        ("RLIMIT_NOFILE", (64, 64)),
        ("RLIMIT_CORE", (0, 0)),
    ]
    if s["host_root"]:  # NPROC counts every process of the uid: the run's own uid has only these
        limits.append(("RLIMIT_NPROC", (processes,) * 2))
    elif "userns" in s.get("modes", ()) and _nproc_per_user_namespace():
        # counted within this user namespace only: the program's processes plus the harness's
        limits.append(("RLIMIT_NPROC", (s["max_processes"] + HARNESS_PROCESSES,) * 2))
    for name, value in limits:
        resource.setrlimit(getattr(resource, name), value)


# seccomp: system calls no checked program needs, refused with EPERM (x86-64 numbers). The jail
# already keeps mounts and namespaces away from the host; this closes the kernel's wider surface
# (an outside probe reached bpf, perf_event_open and keyctl, and nested user namespaces).
DENIED_SYSCALLS_X86_64 = {
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "unshare": 272,
    "setns": 308,
    "bpf": 321,
    "perf_event_open": 298,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "userfaultfd": 323,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "open_by_handle_at": 304,
    "name_to_handle_at": 303,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "acct": 163,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "syslog": 103,
    "quotactl": 179,
    "io_uring_setup": 425,
    "personality": 135,
    "pidfd_getfd": 438,
    "process_madvise": 440,
}
CLONE_X86_64, CLONE3_X86_64 = 56, 435
CLONE_NAMESPACES = 0x7E020000  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
AUDIT_ARCH_X86_64 = 0xC000003E
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


def _seccomp_program() -> bytes | None:
    """The BPF filter (struct sock_filter[]) for this machine, or None where the table does
    not cover its architecture. clone with a namespace flag is refused; clone3 (whose flags
    sit behind a pointer a filter cannot read) answers ENOSYS, and libc falls back to clone."""
    import struct

    if os.uname().machine != "x86_64":
        return None
    ld_w_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill, eperm, enosys = 0x7FFF0000, 0x80000000, 0x00050000 | 1, 0x00050000 | 38
    denied = sorted(DENIED_SYSCALLS_X86_64.values())
    n = len(denied)
    code = [(ld_w_abs, 0, 0, 4), (jeq, 1, 0, AUDIT_ARCH_X86_64), (ret, 0, 0, kill), (ld_w_abs, 0, 0, 0)]
    eperm_at, enosys_at, clone_at = 11 + n, 12 + n, 8 + n  # the program's tail, by index
    code.append((jge, eperm_at - 5, 0, 0x40000000))  # x32 system calls: refused
    for i, nr in enumerate(denied):
        code.append((jeq, eperm_at - (6 + i), 0, nr))
    code.append((jeq, enosys_at - (6 + n), 0, CLONE3_X86_64))
    code.append((jeq, clone_at - (7 + n), 0, CLONE_X86_64))
    code.append((ret, 0, 0, allow))
    code += [
        (ld_w_abs, 0, 0, 16),
        (jset, eperm_at - (10 + n), 0, CLONE_NAMESPACES),
        (ret, 0, 0, allow),
        (ret, 0, 0, eperm),
        (ret, 0, 0, enosys),
    ]
    assert len(code) == 13 + n and all(jt < 256 for _, jt, _, _ in code)
    return b"".join(struct.pack("HBBI", *ins) for ins in code)


def install_seccomp(libc) -> bool:
    """Apply the filter to this process and its children (needs no_new_privs); False where it
    does not apply (another architecture) or the kernel refuses it."""
    program = _seccomp_program()
    if program is None:
        return False

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_char_p))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0


def _seccomp_works(libc) -> bool:
    """Whether this kernel takes the filter (a container may refuse seccomp): tried in a child,
    so a refusal leaves the jail as it is and the mode list says so (no "seccomp")."""
    if _seccomp_program() is None:
        return False
    pid = os.fork()
    if pid == 0:
        os._exit(0 if install_seccomp(libc) else 1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _start(
    python: str, s: dict, role: str, uid: int, processes: int, fds: list[int], close: list[int], modes: list[str]
) -> int:
    """Fork one harness process (program or checker) with its limits, uid and pipes."""
    pid = os.fork()
    if pid:
        return pid
    try:
        for fd in close:
            os.close(fd)
        for fd in fds:
            os.set_inheritable(fd, True)
        limit(s, processes)
        if s["host_root"]:
            drop_privileges(uid)
        else:  # root of a user namespace: exec must not hand it that namespace's capabilities
            libc = _libc()
            if (
                libc.prctl(PR_SET_SECUREBITS, SECURE_NOROOT, 0, 0, 0) != 0
                or libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            ):
                raise OSError(ctypes.get_errno(), "dropping the user namespace's capabilities failed")
        if "seccomp" in modes and not install_seccomp(_libc()):
            raise OSError(ctypes.get_errno(), "installing the seccomp filter failed")
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": os.getcwd(),
            "TMPDIR": os.getcwd(),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "SANDBOX_MODES": ",".join(modes),
            "SANDBOX_ROLE": role,
            "SANDBOX_FDS": ",".join(map(str, fds)),
        }
        os.execve(python, [python, "-I", "-c", s["runner"]], env)
    except BaseException as exc:  # noqa: BLE001 - report and leave; never return into the parent's code
        print(f"sandbox-launch-error: {role}: {exc}", file=sys.stderr, flush=True)
    os._exit(120)


def run_pair(python: str, s: dict, job: dict, modes: list[str]) -> None:
    """The program and the checker (filters/sandbox_runner.py), joined by two pipes; the
    program never sees the tests. Exits with the checker's status once it is done."""
    program = json.dumps({"program": job["program"], "entry_point": job.get("entry_point")}).encode()
    tests = json.dumps({"tests": job["tests"], "format": job["format"], "entry_point": job.get("entry_point")}).encode()
    nonce = job["nonce_fd"]
    prog_r, prog_w = os.pipe()
    test_r, test_w = os.pipe()
    req_r, req_w = os.pipe()
    ans_r, ans_w = os.pipe()
    os.close(0)
    ready_r, ready_w = os.pipe()
    # The checker first: it makes itself undumpable (no ptrace, no /proc/<pid>/mem) before
    # the program exists, which matters where both run as the same user.
    checker_pid = _start(
        python,
        s,
        "checker",
        s["checker_uid"],
        4,
        [test_r, req_w, ans_r, nonce, ready_w],
        [prog_r, prog_w, test_w, req_r, ans_w, ready_r],
        modes,
    )
    os.close(ready_w)
    os.read(ready_r, 1)  # b"" if the checker died: its exit status will say so
    os.close(ready_r)
    program_pid = _start(
        python,
        s,
        "program",
        s["uid"],
        s["max_processes"],
        [prog_r, req_r, ans_w],
        [prog_w, test_r, test_w, req_w, ans_r, nonce],
        modes,
    )
    for fd in (prog_r, test_r, req_r, req_w, ans_r, ans_w, nonce):
        os.close(fd)
    for fd, data in ((prog_w, program), (test_w, tests)):
        try:
            os.write(fd, data) if len(data) < 65536 else _write_all(fd, data)
        except OSError:
            pass  # that process is already gone: its exit status tells
        os.close(fd)
    stop = threading.Event()
    if "pidns" in modes and "no-proc" not in modes:  # /proc is the jail's: its processes are the run's
        spare = {os.getpid(), checker_pid}
        threading.Thread(
            target=watch_memory,
            daemon=True,
            args=(
                s["memory_mb"] << 10,
                lambda: (int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in spare),
                stop,
            ),
        ).start()
    status, program_done = None, False
    while status is None:
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            os._exit(1)
        code = os.waitstatus_to_exitcode(raw)
        if pid == program_pid:
            _report_program_exit(code)
            program_done = True
        elif pid == checker_pid:
            status = code
    if not program_done:
        # Both may be zombies at once (a program killed by a limit closes its pipes, the checker
        # reports and exits), and wait() reaps the older child first. A program that is still
        # running leaves within milliseconds of the checker's exit (end of its request pipe).
        deadline = time.monotonic() + PROGRAM_GRACE_SECONDS
        while not program_done and time.monotonic() < deadline:
            pid, raw = os.waitpid(program_pid, os.WNOHANG)
            if pid:
                _report_program_exit(os.waitstatus_to_exitcode(raw))
                program_done = True
            else:
                time.sleep(0.002)
    stop.set()
    if not program_done:
        try:
            os.kill(program_pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(status if status >= 0 else 128 - status)


PROGRAM_GRACE_SECONDS = 0.5
MEMORY_POLL_SECONDS = 0.02


def _rss_kb(pid: int) -> int:
    """The process's proportional share of resident memory (PSS: a page shared by n processes,
    copy-on-write after fork, counts 1/n each), else its resident size."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return 0  # gone


def watch_memory(limit_kb: int, pids, stop, poll: float = MEMORY_POLL_SECONDS) -> bool:
    """The run's memory cap across processes: RLIMIT_AS bounds each process, so 12 processes
    could hold 12 x memory_mb. Every `poll` seconds sum the resident memory (PSS) of `pids()` (the
    program's processes) and SIGKILL them all once it passes `limit_kb`; True when it did."""
    while not stop.wait(poll):
        running = list(pids())
        if sum(_rss_kb(pid) for pid in running) > limit_kb:
            print(f"sandbox-memory-limit\t{limit_kb // 1024}", file=sys.stderr, flush=True)
            for pid in running:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            return True
    return False


def _report_program_exit(code: int) -> None:
    """For the verdict: a program killed by a limit "crashed"."""
    print(f"sandbox-program-exit\t{code}", file=sys.stderr, flush=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main() -> None:
    s = json.loads(sys.argv[1])
    python = os.path.realpath(sys.executable)  # a venv's python links to the base interpreter (in the jail)
    job = json.loads(sys.stdin.buffer.read())  # before the namespaces: the parent writes it all at once
    s["host_root"] = os.geteuid() == 0 and not s.get("as_user")  # as_user: the non-root path (tests)
    try:
        modes = isolate(s)
    except OSError as exc:
        print(f"sandbox-launch-error: {exc}", file=sys.stderr, flush=True)
        os._exit(120)
    run_pair(python, s, job, modes)


if __name__ == "__main__":
    main()
