"""Sandbox launcher: the first process of a sandboxed run (see filters/sandbox.py).

    python -I filters/sandbox_launch.py '<json settings>'

Run as root it unshares a network and a mount namespace (no interfaces up, so no
network at all; a private size-capped tmpfs on /tmp, /var/tmp and /dev/shm that is
the working directory and vanishes with the run), sets resource limits, drops to
the run's own unprivileged uid and execs the harness. Not root, it tries a user +
network namespace and otherwise leaves sockets to the harness's guard; the
parent's temporary directory is the working directory then. Standard library
only: it must not import the project.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = (
    1, 2, 4, 32, 4096, 8192, 1 << 14, 1 << 18)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _unshare(libc, flags: int) -> bool:
    return libc.unshare(flags) == 0


def _mount(libc, src, target, fstype, flags, opts=None) -> None:
    enc = lambda v: v.encode() if isinstance(v, str) else v  # noqa: E731
    if libc.mount(enc(src), enc(target), enc(fstype), flags, enc(opts)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} on {target}: {os.strerror(err)}")


def _closed_ancestor(path: str) -> str | None:
    """The highest directory above `path` that other users cannot enter (e.g. /root), if any."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        d = "/" + "/".join(parts[:i])
        if not os.stat(d).st_mode & 0o001:
            return d
    return None


def cover_and_keep_python(libc, covered: list[str], size_mb: int) -> None:
    """Cover `covered` (and any directory other users cannot enter above the interpreter, like
    /root) with fresh tmpfs in this mount namespace, then put the interpreter's folders back
    at their old paths, read-only. The venv may live under /tmp (a CI checkout), the
    interpreter under /root/.pyenv; neither is otherwise reachable once covered."""
    prefixes = sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)})
    held = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in prefixes}  # survive the covering
    tops = [t for t in (_closed_ancestor(p) for p in prefixes) if t]
    for target in covered:
        if os.path.isdir(target):
            _mount(libc, "tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode=1777")
    for top in sorted(set(tops)):
        _mount(libc, "tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    hidden = [*covered, *tops]
    for prefix, fd in held.items():
        if any(prefix == h or prefix.startswith(h.rstrip("/") + "/") for h in hidden):
            os.makedirs(prefix, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}", prefix, None, MS_BIND | MS_REC)
            _mount(libc, None, prefix, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        os.close(fd)


def isolate(s: dict) -> list[str]:
    """Namespaces and working directory; returns the isolation modes in effect."""
    libc, modes = _libc(), []
    if os.geteuid() == 0:
        if not _unshare(libc, CLONE_NEWNS | CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), "unshare(mount|net) failed")
        if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            raise OSError(ctypes.get_errno(), "making / private failed")
        cover_and_keep_python(libc, ["/tmp", "/var/tmp", "/dev/shm"], s["disk_mb"])
        os.chdir("/tmp")
        modes += ["netns", "private-tmp", f"uid-{s['uid']}"]
    else:
        if _unshare(libc, CLONE_NEWUSER | CLONE_NEWNET):
            modes.append("netns(userns)")
        os.chdir(s["workdir"])
        modes.append("workdir")
    return modes


def limit(s: dict) -> None:
    cpu = int(s["cpu_seconds"])
    limits = [("RLIMIT_CPU", (cpu, cpu + 1)), ("RLIMIT_AS", (s["memory_mb"] << 20,) * 2),
              ("RLIMIT_FSIZE", (s["disk_mb"] << 20,) * 2), ("RLIMIT_NOFILE", (64, 64)), ("RLIMIT_CORE", (0, 0))]
    if os.geteuid() == 0:  # NPROC counts every process of the uid: only meaningful on the run's own uid
        limits.append(("RLIMIT_NPROC", (s["max_processes"],) * 2))
    for name, value in limits:
        resource.setrlimit(getattr(resource, name), value)


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def main() -> None:
    s = json.loads(sys.argv[1])
    try:
        modes = isolate(s)
        limit(s)
        if os.geteuid() == 0:
            drop_privileges(s["uid"])
    except OSError as exc:
        print(f"sandbox-launch-error: {exc}", file=sys.stderr, flush=True)
        os._exit(120)
    env = {"PATH": "/usr/bin:/bin", "HOME": os.getcwd(), "TMPDIR": os.getcwd(), "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "SANDBOX_MODES": ",".join(modes)}
    os.execve(sys.executable, [sys.executable, "-I", "-c", s["runner"]], env)


if __name__ == "__main__":
    main()
