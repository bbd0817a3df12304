"""Plugins (selftaught.plugins): registries with capabilities, user code by dotted path or file,
the config errors that name a bad plugin, provenance in the round hash.
Elsewhere: verifiers at run time in tests/unit/filters/test_plugin_verifiers.py, the generic
dataset task and user tasks in tests/unit/synth/test_tasks.py, `selftaught new` and `plugins`
in tests/unit/pipelines/test_plugin_commands.py, the entry-point path and whole rounds on user
code in tests/e2e/test_plugin_rounds.py."""

import ast
import sys
from pathlib import Path

import pytest

from filters.verifiers import get_verifier
from selftaught.config import ConfigError, load_config, parse_config
from selftaught.plugins import OBJECTIVES, TASKS, VERIFIERS
from tests.helpers import ROOT
from tests.helpers import write_dedented as write


def test_builtins_are_registered_with_capabilities_where_they_are_defined():
    assert set(VERIFIERS.builtin_names()) == {
        "arithmetic",
        "numeric",
        "math",
        "majority",
        "sandbox",
        "judge",
        "exact_match",
    }
    assert set(TASKS.builtin_names()) == {
        "arithmetic",
        "list_max",
        "addition",
        "story",
        "gsm8k",
        "math",
        "humaneval",
        "mbpp",
        "dataset",
    }
    assert set(OBJECTIVES.builtin_names()) == {"sft", "dpo", "grpo"}
    assert VERIFIERS.get("arithmetic").caps.checks_steps and not VERIFIERS.get("numeric").caps.checks_steps
    assert not VERIFIERS.get("majority").caps.needs_reference and VERIFIERS.get("majority").caps.groups
    assert VERIFIERS.get("judge").caps.generates and VERIFIERS.get("sandbox").caps.feedback == "reason"
    assert OBJECTIVES.get("grpo").caps.online and not OBJECTIVES.get("grpo").caps.launchable
    assert OBJECTIVES.get("dpo").caps.trains_on == "pairs" and OBJECTIVES.get("dpo").caps.reference_model
    assert TASKS.get("list_max").caps.min_level == 2 and TASKS.get("arithmetic").caps.curriculum
    for name in TASKS.builtin_names():  # every task's default verifier is registered
        VERIFIERS.get(TASKS.get(name).caps.verifier)
    # where each is defined: the module of its object
    assert VERIFIERS.get("numeric").obj.__module__ == "filters.verifiers"
    assert OBJECTIVES.get("grpo").obj.__module__ == "train.grpo"


NAME_CHECK_EXEMPT = {
    # code reference formats, which share the names of the code tasks
    "filters/code.py": "the code reference's format field (humaneval | mbpp)",
    "filters/sandbox.py": "the code reference's format field",
    "filters/sandbox_runner.py": "the code reference's format field",
    # the chat tasks' problem generators, registered by synth/tasks.py
    "synth/chat_tasks.py": "GENERATORS: the chat tasks' generators by name",
}


def _name_uses(tree: ast.AST, names: set[str], keys: set[str] | None = None) -> list[tuple[int, str]]:
    """Comparisons with, and .startswith() of, plugin `names`; dict displays keyed by `keys`
    (default: the same names)."""
    keys = names if keys is None else keys

    def named(node) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return set().union(*(named(e) for e in node.elts)) if node.elts else set()
        return set()

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops
        ):
            hit = named(node.left).union(*(named(c) for c in node.comparators))
            if hit:
                found.append((node.lineno, f"compares {sorted(hit)}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith")
            and node.args
            and named(node.args[0])
        ):
            found.append((node.lineno, f"{node.func.attr}({sorted(named(node.args[0]))})"))
        elif isinstance(node, ast.Dict):
            hit = {k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in keys}
            if hit:
                found.append((node.lineno, f"a table keyed by {sorted(hit)}"))
    return found


def test_no_plugin_name_is_compared_outside_the_module_that_defines_it():
    """What the code once learned by comparing verifier, objective and task names it now asks
    the registry's capabilities. A name may still appear in the module that registers it."""
    owners: dict[str, set[str]] = {}
    for registry in (VERIFIERS, OBJECTIVES, TASKS):
        for name in registry.builtin_names():
            module = sys.modules[registry.get(name).obj.__module__].__file__
            owners.setdefault(name, set()).add(str(Path(module).resolve().relative_to(ROOT)))
    # lookup tables keyed by name: verifiers and objectives (task names are also common words)
    keyed = set(VERIFIERS.builtin_names()) | set(OBJECTIVES.builtin_names())
    offenders = []
    for package in ("selftaught", "synth", "filters", "train", "assets", "pipelines", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel in NAME_CHECK_EXEMPT or "templates" in path.parts:
                continue
            names = {n for n, where in owners.items() if rel not in where}
            for line, what in _name_uses(ast.parse(path.read_text()), names, names & keyed):
                offenders.append(f"{rel}:{line}: {what}")
    assert not offenders, "plugin names compared outside their modules:\n" + "\n".join(offenders)


def test_the_name_check_finds_what_it_looks_for():
    tree = ast.parse('if v == "majority" or o in ("sft", "dpo") or r.startswith("sandbox"): x = {"grpo": 1}')
    assert [what for _, what in _name_uses(tree, {"majority", "sft", "dpo", "sandbox", "grpo"})] == [
        "compares ['majority']",
        "compares ['dpo', 'sft']",
        "startswith(['sandbox'])",
        "a table keyed by ['grpo']",
    ]


def test_config_names_come_from_the_registries():
    with pytest.raises(ConfigError, match=r"task.name: .*unknown task 'nope' \(available: .*list_max"):
        parse_config({"task": {"name": "nope"}})
    with pytest.raises(
        ConfigError, match=r"verification.verifier: .*unknown verifier 'gpt' \(available: .*exact_match"
    ):
        parse_config({"verification": {"verifier": "gpt"}})
    with pytest.raises(ConfigError, match=r"training.objective: .*unknown objective 'ppo' \(available: dpo, grpo"):
        parse_config({"training": {"objective": "ppo"}})


def test_cross_section_rules_ask_capabilities(tmp_path):
    with pytest.raises(ConfigError, match="the numeric verifier checks no steps .*those that do: arithmetic"):
        parse_config(
            {
                "task": {"name": "list_max", "warm_start": {2: 1}, "pool": {2: 1}, "eval": {2: 1}},
                "selection": {"require_rationale": True},
            }
        )
    checker = write(
        tmp_path / "free.py",
        """
        from selftaught.plugins import verifier

        @verifier(needs_reference=False)
        def anything(prompt, completion, reference):
            return True
    """,
    )
    with pytest.raises(ConfigError, match="rationalize .*anything is label-free"):
        parse_config({"verification": {"verifier": f"{checker}:anything"}, "repair": {"mode": "rationalize"}})
    with pytest.raises(ConfigError, match="verification.plugin configures user verifiers; the numeric verifier"):
        parse_config({"verification": {"verifier": "numeric", "plugin": {"timeout_seconds": 5}}})


def test_a_dotted_path_and_a_file_beside_the_config_resolve_with_their_origin(tmp_path, monkeypatch):
    write(tmp_path / "pkgroot" / "mychecks" / "__init__.py", "")
    module = write(
        tmp_path / "pkgroot" / "mychecks" / "exact.py",
        """
        def same(prompt, completion, reference, **row):
            return completion.strip() == reference
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path / "pkgroot"))
    dotted = VERIFIERS.get("mychecks.exact:same")
    assert dotted.origin.kind == "module" and dotted.origin.source == "mychecks.exact"
    assert dotted.origin.sha256 and dotted.name == "same"
    v = get_verifier("mychecks.exact:same")  # in its worker process, which imports what this one can
    try:
        assert [c.verdict for c in v.check_batch(["q", "q"], ["4", "5"], ["4", "4"], ["a", "b"])] == [
            "correct",
            "incorrect",
        ]
    finally:
        v.close()

    folder = tmp_path / "project"
    write(folder / "checks.py", "def same(prompt, completion, reference):\n    return completion == reference\n")
    config = write(folder / "exp.yaml", "verification: {verifier: checks.py:same}\n")
    cfg = load_config(config)
    assert cfg.verification.verifier == f"{(folder / 'checks.py').resolve()}:same"  # anchored at the config
    plugin = cfg.verifier_plugin()
    assert plugin.origin.kind == "file" and plugin.origin.source == str((folder / "checks.py").resolve())
    assert module.read_text() != (folder / "checks.py").read_text()
    monkeypatch.chdir(tmp_path)  # a relative file spec in --set is the shell's, not the config's
    from selftaught.config import with_overrides

    write(tmp_path / "other.py", "def f(prompt, completion, reference):\n    return None\n")
    over = with_overrides(config, ["verification.verifier=other.py:f"], tmp_path / "configs")
    assert load_config(over).verifier_plugin().origin.source == str((tmp_path / "other.py").resolve())


@pytest.mark.parametrize(
    "source, spec, message",
    [
        (None, "missing.py:check", r"no such file .*missing.py"),
        (
            "def check(prompt, completion, reference):\n    return (\n",
            "broken.py:check",
            r"cannot import .*broken.py: SyntaxError",
        ),
        (
            "import not_a_module_anywhere\n",
            "imports.py:check",
            r"ModuleNotFoundError: No module named 'not_a_module_anywhere'",
        ),
        (
            "def other(prompt, completion, reference):\n    return True\n",
            "noattr.py:check",
            r"has no attribute 'check' \(its functions and classes: other\)",
        ),
        (
            "def check(x):\n    return True\n",
            "narrow.py:check",
            r"takes check\(x\); a verifier takes \(prompt, completion, "
            r"reference, \*\*row\)",
        ),
        ("class check:\n    pass\n", "empty.py:check", r"the class check has no check\(\) or check_batch\(\) method"),
        ("check = 3\n", "value.py:check", r"is a int, not a function or a class"),
    ],
)
def test_a_bad_verifier_is_one_config_error_naming_it_and_the_cause(tmp_path, source, spec, message):
    if source is not None:
        write(tmp_path / spec.split(":")[0], source)
    config = write(tmp_path / "exp.yaml", f"verification: {{verifier: '{spec}'}}\n")
    with pytest.raises(ConfigError, match=message) as err:
        load_config(config)
    assert "verification.verifier" in str(err.value) and spec.split(":")[0] in str(err.value)


def test_a_bad_task_is_one_config_error(tmp_path):
    write(
        tmp_path / "tasks.py",
        """
        def one_arg(rng):
            return None

        class NoPool:
            def warm_start(self): ...
            def eval_set(self, exclude): ...
    """,
    )
    with pytest.raises(ConfigError, match=r"task.name: .*takes one_arg\(rng\); a task is a problem generator"):
        load_config(write(tmp_path / "a.yaml", "task: {name: tasks.py:one_arg}\n"))
    with pytest.raises(ConfigError, match=r"the class NoPool has no pool method"):
        load_config(write(tmp_path / "b.yaml", "task: {name: tasks.py:NoPool}\n"))


def test_a_verifier_class_is_made_with_the_plugin_options(tmp_path):
    write(
        tmp_path / "cls.py",
        """
        class Within:
            def __init__(self, tolerance):
                self.tolerance = tolerance

            def check(self, prompt, completion, reference):
                return abs(float(completion) - float(reference)) <= self.tolerance
    """,
    )
    ok = load_config(
        write(
            tmp_path / "ok.yaml",
            "verification: {verifier: cls.py:Within, plugin: {options: {tolerance: 0.5}, isolated: false}}\n",
        )
    )
    v = get_verifier(ok.verification.verifier, ok.verification)
    assert [c.verdict for c in v.check_batch(["q", "q"], ["1.4", "2"], ["1", "1"], ["a", "b"])] == [
        "correct",
        "incorrect",
    ]
    with pytest.raises(ConfigError, match=r"cannot make the class with verification.plugin.options \{\}: TypeError"):
        load_config(write(tmp_path / "bad.yaml", "verification: {verifier: cls.py:Within}\n"))


def test_editing_the_checker_changes_the_round_hash_moving_it_does_not(tmp_path):
    checks = write(tmp_path / "a" / "checks.py", "def f(prompt, completion, reference):\n    return True\n")
    config = write(tmp_path / "a" / "exp.yaml", "verification: {verifier: checks.py:f}\n")
    first = load_config(config).round_hash()
    write(tmp_path / "b" / "checks.py", checks.read_text())
    moved = write(tmp_path / "b" / "exp.yaml", config.read_text())
    assert load_config(moved).round_hash() == first  # the file's content counts, not its folder
    checks.write_text("def f(prompt, completion, reference):\n    return False\n")
    assert load_config(config).round_hash() != first
    assert (
        load_config(ROOT / "pipelines" / "presets" / "demo.yaml").content_hash() == "514b6068a2903f62"
    )  # as before plugins (the round hash without the version)
