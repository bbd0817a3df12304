"""Plugins: tasks, verifiers and training objectives, with their capabilities and origin.

Each kind has a registry. The built-ins register themselves where they are defined
(`@VERIFIERS.register("numeric", ...)` in filters/verifiers.py); the contracts package only
names the modules that hold them and imports those on the first lookup. User code comes in
three ways, and a config names it like a built-in:

    numeric                        a registered name (built-in)
    json_match                     an entry point of an installed package, in the group
                                   selftaught.verifiers (selftaught.tasks for tasks)
    my_pkg.checks:json_match       a dotted path, module:attribute
    checks.py:json_match           a Python file (relative to the config file that names it)

Every entry carries its capabilities, which the rest of the code asks instead of comparing
names (a label-free verifier, one that checks steps, an objective that trains online), and
its origin: built-in, `package==version`, or a file and the sha256 of its source. The origin
of user code goes into the round hash and into every verdict it writes, so editing the
check makes the rounds it judged stale, and `selftaught lineage` names the checker of a row.

The public API for user code is at the bottom: `Check`, `Problem`, and the decorators
`verifier(...)` and `task(...)` that declare capabilities.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUPS = {
    "task": "selftaught.tasks",
    "verifier": "selftaught.verifiers",
    "objective": "selftaught.objectives",
}


class PluginError(ValueError):
    """A plugin cannot be found, imported or used: the message names it and the cause."""


# ---- what user code returns ------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One verdict. `verdict` is correct, incorrect or unverifiable; `reward` the score behind it."""

    verdict: str
    reward: float
    extracted_answer: str | None
    reason: str
    rationale_ok: bool | None = None
    parsed_reference: str | None = None
    details: str | None = None  # JSON, verifier-specific (the sandbox: per-test results)


@dataclass(frozen=True)
class Problem:
    """One problem of a procedural task: the question asked, the answer the verifier checks,
    a worked solution (the warm-start target) and any more columns the verifier should see."""

    question: str
    answer: Any
    solution: str = ""
    fields: dict = field(default_factory=dict)


# ---- capabilities ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierCaps:
    """What a verifier can do; the code asks these, never its name."""

    needs_reference: bool = True  # False: label-free, never reads a reference (majority vote, a judge)
    checks_steps: bool = False  # fills rationale_ok (selection.require_rationale keeps samples whose steps check out)
    feedback: str = "answer"  # a reflection prompt is told "answer": that the answer is wrong or missing;
    # "reason": the verdict's reason verbatim (which test failed, and how)
    second_opinion: str | None = None  # the independent re-check of correct samples in the audit (its name)
    groups: bool = False  # judges all samples of a prompt together (majority vote)
    generates: bool = False  # a model writes the verdicts (the LLM judge): no GRPO reward
    pseudo_labels: bool = False  # parsed_reference is a pseudo-label: its accuracy against references is reported
    graded: bool = False  # the reward is a score: GRPO is rewarded with it, not with 1 / 0
    threshold: float | None = None  # plugins that return a score: correct at or above it (default 1.0)
    columns: bool = False  # receives every column of the task's row (structured references)

    def describe(self) -> str:
        bits = ["reference" if self.needs_reference else "label-free"]
        bits += [
            name
            for name, on in (
                ("checks steps", self.checks_steps),
                ("per prompt group", self.groups),
                ("model judge", self.generates),
                ("pseudo-labels", self.pseudo_labels),
                ("graded reward", self.graded),
                ("row columns", self.columns),
            )
            if on
        ]
        if self.feedback == "reason":
            bits.append("feedback: its reason")
        if self.second_opinion:
            bits.append(f"audit: {self.second_opinion}")
        if self.threshold is not None:
            bits.append(f"correct at >= {self.threshold:g}")
        return ", ".join(bits)


@dataclass(frozen=True)
class TaskCaps:
    """What a task is; the config's rules and the tables ask these, never its name."""

    verifier: str = "exact_match"  # the verifier its references are checked with unless the config names one
    procedural: bool = False  # drawn per difficulty level (task.warm_start / pool / eval counts), not
    # read from a dataset (task.pool_size / eval_size)
    dataset: bool = False  # reads task.train (and task.test): a dataset source
    needs_test: bool = True  # a dataset task without task.test is an error (else: split task.train)
    fixed_prompts: bool = False  # task.template does not apply
    min_level: int = 1  # the lowest difficulty level it can draw
    curriculum: bool = False  # task.curriculum can widen its pool one level at a time
    level_name: str = "level"  # what a difficulty is called in tables ("digits" for arithmetic)
    contamination_check: bool = False  # held-out questions also in train rows are reported and kept out

    def describe(self) -> str:
        kind = "procedural" if self.procedural else "dataset" if self.dataset else "rows of its own"
        bits = [kind, f"verifier {self.verifier}"]
        if self.dataset and not self.needs_test:
            bits.append("splits task.train when task.test is unset")
        bits += [
            name
            for name, on in (
                ("fixed prompts", self.fixed_prompts),
                ("curriculum", self.curriculum),
                ("contamination check", self.contamination_check),
            )
            if on
        ]
        if self.min_level != 1:
            bits.append(f"levels from {self.min_level}")
        return ", ".join(bits)


@dataclass(frozen=True)
class ObjectiveCaps:
    """What a training objective needs and produces."""

    trains_on: str = "training_set"  # the round table it trains on: training_set | pairs | rollouts
    online: bool = False  # generates its own rollouts while training (no offline samples)
    launchable: bool = True  # can train under `accelerate launch` (training.launcher)
    reference_model: bool = False  # trains against a fixed reference policy (training.dpo.reference)
    trl_config: str = ""  # TRL's config class
    own_fields: tuple[tuple[str, str], ...] = ()  # TRL config fields selftaught sets, and the key that sets them
    label: str = "fine-tune"  # how lineage names its training

    def describe(self) -> str:
        bits = [f"trains on {self.trains_on}", f"TRL {self.trl_config}"]
        bits += [
            name
            for name, on in (
                ("online", self.online),
                ("reference model", self.reference_model),
                ("accelerate launch", self.launchable),
            )
            if on
        ]
        return ", ".join(bits)


CAPS = {"task": TaskCaps, "verifier": VerifierCaps, "objective": ObjectiveCaps}
# User code differs from the built-ins' defaults: it gets every column of the row, a
# reflection prompt repeats the reason it returns (never put the reference in it), and the
# audit runs the same check again in a fresh process (a non-deterministic check shows).
USER_DEFAULTS = {
    "verifier": {"columns": True, "feedback": "reason", "second_opinion": "the same check again, in a fresh process"}
}


# ---- origin and identity -----------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """Where a plugin's code comes from."""

    kind: str  # built-in | package | module | file
    source: str  # selftaught | the distribution | the module | the file's absolute path
    version: str | None = None  # the distribution's version
    sha256: str | None = None  # the defining source file's, for anything but a built-in

    def describe(self) -> str:
        if self.kind == "built-in":
            return "built-in"
        if self.kind == "package":
            return f"{self.source}=={self.version}"
        return f"{self.kind} {self.source} sha256:{(self.sha256 or '')[:12]}"

    def short(self) -> str:
        """describe() with a file's name for its path (tables)."""
        return (
            f"file {Path(self.source).name} sha256:{(self.sha256 or '')[:12]}"
            if self.kind == "file"
            else self.describe()
        )

    def tag(self) -> str:
        """Short, for a verdict's `verifier` column: package==version, else sha256:<12 hex>."""
        if self.kind == "package":
            return f"{self.source}=={self.version}" + (f"+{self.sha256[:8]}" if self.sha256 else "")
        return f"sha256:{(self.sha256 or '')[:12]}"


@dataclass(frozen=True)
class Plugin:
    """A registry entry: the object, its capabilities, its origin and how to load it again."""

    kind: str  # task | verifier | objective
    name: str  # the registered or entry-point name, else the attribute's
    obj: Any
    caps: Any
    origin: Origin
    spec: str  # as the config names it (a file spec made absolute)
    load: dict = field(default_factory=dict)  # how another process loads it (plugin_worker)

    @property
    def builtin(self) -> bool:
        return self.origin.kind == "built-in"

    def identity(self) -> dict:
        """name, origin, version, sha256: what the verdicts' metadata and provenance record."""
        return {
            "name": self.name,
            "spec": self.spec,
            "origin": self.origin.describe(),
            "version": self.origin.version,
            "sha256": self.origin.sha256,
        }

    def hash_key(self) -> str:
        """What the round hash sees: a built-in's name (unchanged since before plugins); for user
        code, its name with the package version and the source's sha256, not its location."""
        if self.builtin:
            return self.spec
        return f"{self.name}@{self.origin.version or ''}#{self.origin.sha256}"


# ---- registries ----------------------------------------------------------------------------------


class Registry:
    """The plugins of one kind: built-ins registered by their modules, and user code found
    by entry point, dotted path or file."""

    def __init__(self, kind: str, builtin_modules: tuple[str, ...]):
        self.kind, self.group = kind, ENTRY_POINT_GROUPS[kind]
        self._builtin_modules = builtin_modules
        self._entries: dict[str, Plugin] = {}
        self._loaded = False
        self._lock = threading.RLock()
        self._resolved: dict[tuple, Plugin] = {}

    # ---- registering ---------------------------------------------------------------------------

    def register(self, name: str, obj: Any = None, **caps):
        """Register `obj` (or, as a decorator, the decorated object) under `name` with its
        capabilities. Built-ins call this where they are defined."""

        def add(target):
            origin = Origin("built-in", "selftaught", _selftaught_version())
            self._entries[name] = Plugin(
                self.kind, name, target, CAPS[self.kind](**caps), origin, name, {"kind": "registered", "name": name}
            )
            return target

        return add if obj is None else add(obj)

    def _load_builtins(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for module in self._builtin_modules:
                importlib.import_module(module)

    # ---- finding -------------------------------------------------------------------------------

    def builtin_names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def entry_points(self) -> dict[str, Any]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=self.group)}

    def names(self) -> list[str]:
        """Every name a config can use without a path: built-ins and entry points."""
        return sorted({*self.builtin_names(), *self.entry_points()})

    def get(self, spec: str, base_dir: str | Path | None = None) -> Plugin:
        """The plugin a config names; a PluginError naming it and the cause otherwise."""
        if not isinstance(spec, str) or not spec.strip():
            raise PluginError(f"a {self.kind} must be named, got {spec!r}")
        self._load_builtins()
        if spec in self._entries:
            return self._entries[spec]
        if ":" not in spec:
            ep = self.entry_points().get(spec)
            if ep is None:
                raise PluginError(
                    f"unknown {self.kind} {spec!r} (available: {', '.join(self.names())}; or user code "
                    f"as module:attribute or file.py:attribute, or an installed package's entry "
                    f"point in group {self.group})"
                )
            return self._from_entry_point(ep)
        where, _, attr = spec.rpartition(":")
        if not where or not attr.isidentifier():
            raise PluginError(f"{self.kind} {spec!r}: expected module:attribute or file.py:attribute")
        if is_file_spec(spec):
            path = Path(where)
            if not path.is_absolute():
                path = Path(base_dir or ".") / path
            return self._from_file(spec, path.resolve(), attr)
        return self._from_module(spec, where, attr)

    def _from_entry_point(self, ep) -> Plugin:
        key = ("ep", ep.name, ep.value, ep.dist.version if ep.dist else None)
        with self._lock:
            if key not in self._resolved:
                try:
                    obj = ep.load()
                except Exception as exc:  # noqa: BLE001 -- whatever the import raised, named
                    raise PluginError(
                        f"{self.kind} {ep.name!r} (entry point {ep.value} of "
                        f"{ep.dist.name if ep.dist else 'an unknown package'}): cannot import it: "
                        f"{type(exc).__name__}: {exc}"
                    ) from None
                dist = ep.dist
                origin = Origin(
                    "package", dist.name if dist else ep.module, dist.version if dist else None, _source_sha(obj)
                )
                self._resolved[key] = self._plugin(
                    ep.name, obj, origin, ep.name, {"kind": "entry_point", "group": self.group, "name": ep.name}
                )
            return self._resolved[key]

    def _from_module(self, spec: str, module: str, attr: str) -> Plugin:
        with self._lock:
            try:
                mod = importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001
                raise PluginError(
                    f"{self.kind} {spec!r}: cannot import {module}: {type(exc).__name__}: {exc}"
                ) from None
            sha = _file_sha(getattr(mod, "__file__", None))
            key = ("module", spec, sha)
            if key not in self._resolved:
                obj = _attribute(mod, attr, spec, self.kind)
                dist = _distribution_of(module)
                origin = Origin("package", dist[0], dist[1], sha) if dist else Origin("module", module, None, sha)
                self._resolved[key] = self._plugin(
                    attr, obj, origin, spec, {"kind": "module", "module": module, "attr": attr}
                )
            return self._resolved[key]

    def _from_file(self, spec: str, path: Path, attr: str) -> Plugin:
        if not path.is_file():
            raise PluginError(f"{self.kind} {spec!r}: no such file {path}")
        sha = _file_sha(path)
        if sha is None:  # unreadable (import_file would fail on it)
            raise PluginError(f"{self.kind} {spec!r}: cannot read {path}")
        key = ("file", str(path), attr, sha)
        with self._lock:
            if key not in self._resolved:
                mod = import_file(path, sha, f"{self.kind} {spec!r}")
                obj = _attribute(mod, attr, spec, self.kind)
                self._resolved[key] = self._plugin(
                    attr,
                    obj,
                    Origin("file", str(path), None, sha),
                    f"{path}:{attr}",
                    {"kind": "file", "path": str(path), "attr": attr},
                )
            return self._resolved[key]

    def _plugin(self, name: str, obj: Any, origin: Origin, spec: str, load: dict) -> Plugin:
        declared = dict(getattr(obj, "__selftaught_caps__", {}) or {})
        kind = declared.pop("kind", self.kind)
        if kind != self.kind:
            raise PluginError(f"{spec!r} is declared a {kind} (@{kind}), not a {self.kind}")
        declared = {**USER_DEFAULTS.get(self.kind, {}), **declared}
        if self.kind == "task" and "procedural" not in declared and not inspect.isclass(obj):
            declared["procedural"] = True  # a problem generator draws per level, like the chat tasks
        if self.kind == "task" and isinstance(declared.get("verifier"), str):
            try:  # a task's own verifier file is relative to the task's file
                source = inspect.getsourcefile(obj)
                if source is not None:
                    declared["verifier"] = anchored(declared["verifier"], Path(source).parent)
            except TypeError:
                pass
        if self.kind == "verifier" and "graded" not in declared and _first_parameter(obj) in BATCH_FIRST:
            declared["graded"] = True  # a TRL reward function: GRPO is rewarded with its score, as in TRL
        try:
            caps = CAPS[self.kind](**declared)
        except TypeError as exc:
            raise PluginError(f"{self.kind} {spec!r}: bad capabilities {declared}: {exc}") from None
        return Plugin(self.kind, name, obj, caps, origin, spec, load)

    def entries(self) -> list[Plugin]:
        """Every built-in and every entry point (an entry point that fails to import is listed
        with the error as its origin, not raised)."""
        out = [self._entries[n] for n in self.builtin_names()]
        for name, ep in sorted(self.entry_points().items()):
            if name in self._entries:
                continue
            try:
                out.append(self._from_entry_point(ep))
            except PluginError as exc:
                out.append(Plugin(self.kind, name, None, CAPS[self.kind](), Origin("package", str(exc)), name))
        return out


def named(kind: str, spec: str) -> Plugin:
    """For the config's validators: the registry entry `spec` names, with user code's shape
    checked (a verifier's signature, a task's generator or class); a ValueError, which pydantic
    reports under the key, naming the cause."""
    try:
        plugin = REGISTRIES[kind].get(spec)
        if not plugin.builtin and kind == "verifier":
            adapt(plugin.obj, plugin.spec, make=False)
        elif not plugin.builtin and kind == "task":
            check_task_shape(plugin)
    except PluginError as exc:
        raise ValueError(str(exc)) from None
    return plugin


def is_file_spec(spec: str) -> bool:
    """`checks.py:json_match` or `dir/checks.py:json_match` (not `my_pkg.checks:json_match`)."""
    where = spec.rpartition(":")[0]
    return where.endswith(".py") or "/" in where or "\\" in where


def anchored(spec: str, folder: str | Path) -> str:
    """A file spec relative to `folder` (the config file's) made absolute; anything else as is."""
    if not isinstance(spec, str) or ":" not in spec or not is_file_spec(spec):
        return spec
    where, _, attr = spec.rpartition(":")
    path = Path(where)
    return spec if path.is_absolute() else f"{(Path(folder) / path).resolve()}:{attr}"


def load(load_spec: dict, kind: str) -> Any:
    """The object a `Plugin.load` mapping names, in another process (filters.plugin_worker)."""
    how, registry = load_spec["kind"], REGISTRIES[kind]
    if how in ("registered", "entry_point"):
        return registry.get(load_spec["name"]).obj
    where = load_spec["module"] if how == "module" else load_spec["path"]
    return registry.get(f"{where}:{load_spec['attr']}").obj


def import_file(path: Path, sha: str, what: str):
    """Import a Python file as a module of its own (its folder goes on the end of sys.path, so
    its own helper modules import, without shadowing installed packages)."""
    name = f"selftaught_plugin_{path.stem}_{sha[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:  # not a Python file: no loader for its suffix
            raise ImportError(f"no module loader for {path.name}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    except Exception as exc:  # noqa: BLE001
        sys.modules.pop(name, None)
        raise PluginError(f"{what}: cannot import {path}: {type(exc).__name__}: {exc}") from None
    return mod


BATCH_FIRST = ("prompts", "completions")  # a verifier function per batch (TRL's reward functions) starts so


def _first_parameter(obj) -> str | None:
    if inspect.isclass(obj) or not callable(obj):
        return None
    try:
        params = list(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return None
    return params[0] if params else None


def _attribute(mod, attr: str, spec: str, kind: str):
    try:
        return getattr(mod, attr)
    except AttributeError:
        public = sorted(
            n
            for n, v in vars(mod).items()
            if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == mod.__name__
        )
        # a file is imported under a generated module name: name the file the user wrote instead
        where = Path(mod.__file__).name if is_file_spec(spec) and getattr(mod, "__file__", None) else mod.__name__
        raise PluginError(
            f"{kind} {spec!r}: {where} has no attribute {attr!r} "
            f"(its functions and classes: {', '.join(public) or 'none'})"
        ) from None


def _file_sha(path) -> str | None:
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _source_sha(obj) -> str | None:
    try:
        return _file_sha(inspect.getsourcefile(obj))
    except TypeError:
        return None


def _distribution_of(module: str) -> tuple[str, str] | None:
    """(distribution, version) of an installed package's module; None for loose modules."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    dists = packages_distributions().get(module.split(".")[0])
    if not dists:
        return None
    try:
        return dists[0], version(dists[0])
    except PackageNotFoundError:
        return None


def _selftaught_version() -> str:
    from selftaught import __version__

    return __version__


# The built-ins: the modules that register them (imported on the first lookup: the one place the
# contracts package reaches into the layers, by name).
TASKS = Registry("task", ("synth.tasks",))
VERIFIERS = Registry("verifier", ("filters.verifiers", "filters.judge"))
OBJECTIVES = Registry("objective", ("train.sft", "train.dpo", "train.grpo"))
REGISTRIES = {"task": TASKS, "verifier": VERIFIERS, "objective": OBJECTIVES}


# ---- the shapes user code may take ----------------------------------------------------------------

SAMPLE_ARGS = ("prompt", "completion", "reference")  # a per-sample verifier's first three parameters


@dataclass(frozen=True)
class Adapted:
    """A user verifier, ready to call: `mode` row | batch | object."""

    mode: str
    call: Callable
    keywords: frozenset | None  # the row columns it takes by name; None: any (**kwargs)


def _keywords(fn: Callable, skip: tuple[str, ...]) -> frozenset | None:
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return frozenset(
        p.name for p in params if p.name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )


def adapt(obj: Any, spec: str, options: dict | None = None, make: bool = True) -> Adapted | None:
    """How to call `obj`; a PluginError naming the signature when it is none of the forms.
    `make=False` checks a class's methods without making one (and returns None for it)."""
    options = options or {}
    if inspect.isclass(obj):
        if not (callable(getattr(obj, "check_batch", None)) or callable(getattr(obj, "check", None))):
            raise PluginError(
                f"verifier {spec!r}: the class {obj.__name__} has no check() or check_batch() method "
                "(check(prompt, completion, reference), or check_batch(prompts, completions, "
                "references, prompt_ids))"
            )
        if not make:
            return None
        try:
            obj = obj(**options)
        except Exception as exc:  # noqa: BLE001
            raise PluginError(
                f"verifier {spec!r}: cannot make the class with verification.plugin.options "
                f"{options}: {type(exc).__name__}: {exc}"
            ) from None
    elif options:
        raise PluginError(
            f"verifier {spec!r}: verification.plugin.options are for a verifier class; this is a "
            "function (give it keyword defaults instead)"
        )
    if (
        not inspect.isfunction(obj)
        and not inspect.ismethod(obj)
        and (hasattr(obj, "check_batch") or hasattr(obj, "check"))
    ):
        method = getattr(obj, "check_batch", None) or obj.check
        return Adapted("object_batch" if hasattr(obj, "check_batch") else "object", method, None)
    sig, positional, var_args = _call_shape(obj, "verifier", spec)
    shown = f"{getattr(obj, '__name__', spec)}{sig}"
    if positional and positional[0].name in BATCH_FIRST:
        return Adapted("batch", obj, _keywords(obj, ()))
    if len(positional) >= 3 or var_args:
        return Adapted("row", obj, _keywords(obj, SAMPLE_ARGS))
    raise PluginError(
        f"verifier {spec!r} takes {shown}; a verifier takes (prompt, completion, reference, **row) "
        "per sample, or (prompts, completions, **columns) per batch like a TRL reward function, or "
        "is a class with check() or check_batch()"
    )


def _call_shape(obj, kind: str, spec: str):
    """A user function's signature, its positional parameters and whether it takes *args;
    a PluginError when it is not callable or its signature cannot be read."""
    if not callable(obj):
        raise PluginError(f"{kind} {spec!r} is a {type(obj).__name__}, not a function or a class")
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        raise PluginError(f"{kind} {spec!r}: its signature cannot be read") from None
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return sig, positional, any(p.kind is p.VAR_POSITIONAL for p in params)


def check_task_shape(plugin: Plugin) -> None:
    """A PluginError unless a user task is a problem generator `(rng, level)` or a class with
    warm_start, eval_set and pool."""
    obj, spec = plugin.obj, plugin.spec
    if inspect.isclass(obj):
        missing = [m for m in ("warm_start", "eval_set", "pool") if not callable(getattr(obj, m, None))]
        if missing:
            raise PluginError(
                f"task {spec!r}: the class {obj.__name__} has no {', '.join(missing)} method(s); a task "
                "class has warm_start(), eval_set(exclude) and pool(round_index, exclude), each "
                "returning a prompts table"
            )
        return
    sig, positional, var_args = _call_shape(obj, "task", spec)
    if len(positional) < 2 and not var_args:
        raise PluginError(
            f"task {spec!r} takes {getattr(obj, '__name__', spec)}{sig}; a task is a problem "
            "generator (rng, level) -> Problem, or a class with warm_start, eval_set and pool"
        )


# ---- the public API for user code ----------------------------------------------------------------


def _declare(kind: str, obj=None, **caps):
    names = {f.name for f in fields(CAPS[kind])}
    unknown = sorted(set(caps) - names)
    if unknown:
        raise TypeError(f"@{kind}: unknown capabilities {unknown} (known: {sorted(names)})")

    def mark(target):
        target.__selftaught_caps__ = {"kind": kind, **caps}
        return target

    return mark if obj is None else mark(obj)


def verifier(obj: Callable | None = None, **caps):
    """Declare a verifier's capabilities (VerifierCaps): `@verifier(needs_reference=False)`.

    A verifier is one of:
    - a function per sample, `(prompt, completion, reference, **row) -> bool | float | None | Check`
      (or `(value, reason)`): True correct, False incorrect, None unverifiable, a number a
      score (correct at or above `threshold`);
    - a TRL reward function per batch, `(prompts, completions, **columns) -> list[float | None]`;
    - a class with `check(prompt, completion, reference)` or `check_batch(prompts,
      completions, references, prompt_ids)`, made with `verification.plugin.options`.
    """
    return _declare("verifier", obj, **caps)


def task(obj: Callable | None = None, **caps):
    """Declare a task's capabilities (TaskCaps): `@task(verifier="numeric")`.

    A task is one of:
    - a problem generator `(rng: random.Random, level: int) -> Problem` (or a dict with
      question, answer, solution), drawn per difficulty level like the built-in chat tasks;
    - a class made with `(task_config, tokenizer)` with the methods `warm_start()`,
      `eval_set(exclude)` and `pool(round_index, exclude)`, each returning a prompts table.
    """
    return _declare("task", obj, **caps)
