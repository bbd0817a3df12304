"""Tasks: where a round's prompts, the warm-start examples and the held-out evaluation set
come from. Each returns a `prompts` table.

The built-ins register here with their capabilities (selftaught.plugins.TaskCaps); `make_task`
builds any registered, installed or user task from the config: a problem generator
`(rng, level) -> Problem` runs like the chat tasks, a class gets `(task_config, tokenizer)`.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from functools import cached_property
from typing import Any, Protocol

import polars as pl

from filters.code import code_reference
from filters.mathverify import boxed_answer
from filters.numeric import gsm8k_reference
from filters.verifiers import Verifier, get_verifier
from selftaught import schemas
from selftaught.config import ExperimentConfig, TaskConfig
from selftaught.plugins import TASKS, Plugin
from selftaught.round_keys import round_key
from selftaught.seeds import task_round_seed, task_split_seed
from synth import arithmetic, chat_tasks
from synth.sources import Columns, SourceError, load_rows, read_source


class Task(Protocol):
    def warm_start(self) -> pl.DataFrame: ...

    def eval_set(self, exclude: set[str]) -> pl.DataFrame: ...

    def pool(self, round_index: int, exclude: set[str]) -> pl.DataFrame: ...


@TASKS.register(
    "arithmetic", verifier="arithmetic", procedural=True, fixed_prompts=True, curriculum=True, level_name="digit"
)
class ArithmeticTask:
    """Procedural addition; splits are drawn with separate seeds and kept disjoint."""

    def __init__(self, cfg: TaskConfig, tokenizer: str | None = None):
        self.cfg = cfg

    def warm_start(self) -> pl.DataFrame:
        return arithmetic.make_problems(
            self.cfg.warm_start, seed=task_split_seed(self.cfg.seed, "warm_start"), split="warm_start"
        )

    def eval_set(self, exclude: set[str]) -> pl.DataFrame:
        return arithmetic.make_problems(
            self.cfg.eval, seed=task_split_seed(self.cfg.seed, "eval"), exclude=exclude, split="eval"
        )

    def pool(self, round_index: int, exclude: set[str], counts: dict[int, int] | None = None) -> pl.DataFrame:
        """`counts` (a curriculum's) replaces the configured pool sizes."""
        return arithmetic.make_problems(
            counts or self.cfg.pool,
            seed=task_round_seed(self.cfg.seed, round_index),
            exclude=exclude,
            split="pool",
            round_key=round_key(round_index),
        )


class GeneratorTask:
    """A procedural task drawn from a problem generator `(rng, level) -> Problem`, asked as
    one user turn of the model's chat template (`task.chat_template: false`: as plain text);
    `task.template` wraps the question either way. A user's generator runs this way."""

    suffix = ""  # appended to every question
    fields = True  # keep each problem's question, answer and fields for the verifier

    def __init__(self, cfg: TaskConfig, tokenizer: str | None = None, name: str | None = None, generate=None):
        self.cfg = cfg
        self.name = name or cfg.name
        self.generate = generate
        self.chat = load_chat_tokenizer(tokenizer) if cfg.chat_template else None

    def _render(self, question: str) -> str:
        text = (self.cfg.template or "{question}").format(question=question)
        if self.chat is None:
            return text
        return self.chat.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )

    def _draw(
        self, counts: dict[int, int], seed: int, exclude: frozenset[str] | set[str] = frozenset(), **where
    ) -> pl.DataFrame:
        df = chat_tasks.draw_problems(
            self.name, self.generate, counts, seed, self._render, self.suffix, exclude, with_fields=self.fields, **where
        )
        # The assistant turn starts on its own line; plain text needs a space before the answer.
        return df if self.chat else df.with_columns((pl.lit(" ") + pl.col("target")).alias("target"))

    def warm_start(self) -> pl.DataFrame:
        return self._draw(self.cfg.warm_start, task_split_seed(self.cfg.seed, "warm_start"), split="warm_start")

    def eval_set(self, exclude: set[str]) -> pl.DataFrame:
        return self._draw(self.cfg.eval, task_split_seed(self.cfg.seed, "eval"), exclude, split="eval")

    def pool(self, round_index: int, exclude: set[str]) -> pl.DataFrame:
        return self._draw(
            self.cfg.pool,
            task_round_seed(self.cfg.seed, round_index),
            exclude,
            split="pool",
            round_key=round_key(round_index),
        )


class ChatTask(GeneratorTask):
    """The built-in chat tasks of synth/chat_tasks.py (list_max, addition, story): asked for a
    '#### <number>' answer line, checked by the numeric verifier."""

    suffix = chat_tasks.ANSWER_FORMAT
    fields = False  # the numeric verifier reads the reference alone

    def __init__(self, cfg: TaskConfig, tokenizer: str | None = None):
        super().__init__(cfg, tokenizer, cfg.name, chat_tasks.GENERATORS[cfg.name])


TASKS.register(
    "list_max",
    ChatTask,
    verifier="numeric",
    procedural=True,
    min_level=2,  # a list needs two numbers
    level_name="list length",
)
TASKS.register("addition", ChatTask, verifier="numeric", procedural=True)
TASKS.register("story", ChatTask, verifier="numeric", procedural=True)


class DatasetTask:
    """GSM8K / MATH-style tasks from a dataset source; prompts use a template and few-shot
    exemplars. Subclasses set the source's default columns, the template and how a reference
    is read from the answer column."""

    target_prefix = " "  # "Answer:" + " " + solution
    defaults = {"question": "question", "answer": "answer", "solution": "answer"}
    default_template = "Question: {question}\nAnswer:"
    keep_fields = False  # every source column of a row, as JSON, for a verifier that reads them
    optional: tuple[str, ...] = ()  # default columns used only when the source has them

    def __init__(self, cfg: TaskConfig, tokenizer: str | None = None):
        self.cfg = cfg
        self.template = cfg.template or self.default_template
        self.chat = load_chat_tokenizer(tokenizer) if cfg.chat_template else None
        self._cache: dict[str, pl.DataFrame] = {}

    def reference(self, answer: str, solution: str) -> str:
        """The reference a verifier checks, from a row's answer and solution columns."""
        return answer.strip()

    def _source(self, which: str):
        return getattr(self.cfg, which)

    def _load(self, which: str) -> pl.DataFrame:
        src = self._source(which)
        d = self.defaults
        answer_col = None if src.label_free else (src.answer or d["answer"])
        raw = self._prepare(read_source(src.path, src.split, src.revision, src.subset), which)
        difficulty = src.difficulty or (d.get("difficulty") if d.get("difficulty") in raw.columns else None)
        solution = src.solution or (d["solution"] if d["solution"] in raw.columns else None)
        row_id = src.id or (d.get("id") if "id" not in self.optional or d.get("id") in raw.columns else None)
        cols = Columns(
            question=src.question or d["question"],
            answer=answer_col,
            id=row_id,
            difficulty=difficulty,
            solution=solution,
            keep_fields=self.keep_fields,
        )
        df = load_rows(raw, cols, src.on_invalid, source=f"task {self.cfg.name} {which} ({src.path})").rows
        refs = [
            self.reference(a or "", s or "") if not src.label_free else "" for a, s in zip(df["answer"], df["solution"])
        ]
        return df.with_columns(reference=pl.Series(refs, dtype=pl.String))

    def _rows(self, which: str) -> pl.DataFrame:
        if which not in self._cache:
            self._cache[which] = self._load(which)
        return self._cache[which]

    def _prepare(self, raw: pl.DataFrame, which: str) -> pl.DataFrame:
        return raw

    @cached_property
    def _shots(self) -> list[tuple[str, str]]:
        """Few-shot exemplars as (rendered question, solution), built once per task."""
        shots = self._rows("train").head(self.cfg.few_shot)
        return [(self.template.format(question=q), s.strip()) for q, s in zip(shots["question"], shots["solution"])]

    @cached_property
    def _shot_text(self) -> str:
        return "".join(f"{q} {s}\n\n" for q, s in self._shots)

    def _render(self, question: str) -> str:
        text = self.template.format(question=question)
        if self.chat is None:
            return self._shot_text + text
        turns = []
        for q, s in self._shots:
            turns += [{"role": "user", "content": q}, {"role": "assistant", "content": s}]
        turns.append({"role": "user", "content": text})
        return self.chat.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)

    def _prompts(self, df: pl.DataFrame, split: str, round_key: str = "") -> pl.DataFrame:
        out = df.select(
            (pl.lit(f"{self.cfg.name}-") + pl.col("id")).alias("prompt_id"),
            pl.lit(split).alias("split"),
            pl.lit(round_key).alias("round"),
            pl.col("question").map_elements(self._render, return_dtype=pl.String).alias("prompt"),
            pl.col("reference"),
            (pl.lit(self.target_prefix) + pl.col("solution").fill_null("")).alias("target"),
            pl.col("difficulty"),
            *([pl.col("fields")] if "fields" in df.columns else []),
        )
        return schemas.validate(out, "prompts")

    def _train_pool(self) -> pl.DataFrame:
        reserved = self.cfg.few_shot + self.cfg.warm_start_size  # never sampled as pool prompts
        return self._rows("train").slice(reserved).sample(fraction=1.0, shuffle=True, seed=self.cfg.seed)

    def warm_start(self) -> pl.DataFrame:
        rows = self._rows("train").slice(self.cfg.few_shot, self.cfg.warm_start_size)
        return self._prompts(rows, "warm_start")

    def eval_set(self, exclude: set[str]) -> pl.DataFrame:
        # Excluding the warm start matters when train and test are the same file (HumanEval).
        out = self._prompts(self._rows("test"), "eval")
        return out.filter(~pl.col("prompt_id").is_in(list(exclude))).head(self.cfg.eval_size)

    def pool(self, round_index: int, exclude: set[str]) -> pl.DataFrame:
        rows = self._train_pool()
        rows = rows.filter(~(pl.lit(f"{self.cfg.name}-") + pl.col("id")).is_in(list(exclude)))
        n = self.cfg.pool_size
        if rows.height == 0:
            raise ValueError(f"task {self.cfg.name}: no train rows left for pools after few-shot and warm start")
        start = ((round_index - 1) * n) % rows.height  # wraps around when the data runs out
        picked = pl.concat([rows, rows]).slice(start, min(n, rows.height))
        return self._prompts(picked, "pool", round_key(round_index))


@TASKS.register("gsm8k", verifier="numeric", dataset=True)
class GSM8KTask(DatasetTask):
    """GSM8K: the reference is the number after '####' in the answer column."""

    def reference(self, answer: str, solution: str) -> str:
        return gsm8k_reference(answer) if "####" in answer else answer.strip()


@TASKS.register("math", verifier="math", dataset=True)
class MathTask(DatasetTask):
    """MATH-500 style: problem, answer, solution, level."""

    defaults = {"question": "problem", "answer": "answer", "solution": "solution", "difficulty": "level"}

    def reference(self, answer: str, solution: str) -> str:
        if answer.strip():
            return answer.strip()
        return boxed_answer(solution) or ""  # no answer field: the last \boxed{} of the solution


class CodeTask(DatasetTask):
    """HumanEval-format (prompt, entry_point, test) or MBPP-format (text, code, test_list) rows.

    The prompt is the task's text; the reference is JSON with the tests
    (filters/code.py); the warm-start target is the reference solution.
    """

    target_prefix = ""  # code continues the prompt exactly
    needs: tuple[str, ...] = ()  # the source columns the reference is built from

    def reference(self, answer: str, solution: str) -> str:
        return answer  # already the JSON reference

    def _prepare(self, raw: pl.DataFrame, which: str) -> pl.DataFrame:
        src = getattr(self.cfg, which)
        if src.label_free or src.answer:
            return raw
        missing = [c for c in self.needs if c not in raw.columns]
        if missing:
            raise SourceError(
                f"task {self.cfg.name} {which} ({src.path}): column(s) {missing} not found; available: {raw.columns}"
            )
        return self.with_references(raw)

    def with_references(self, raw: pl.DataFrame) -> pl.DataFrame:
        raise NotImplementedError


@TASKS.register("humaneval", verifier="sandbox", dataset=True)
class HumanEvalTask(CodeTask):
    defaults = {"question": "prompt", "answer": "reference_json", "solution": "canonical_solution", "id": "task_id"}
    default_template = "{question}"
    needs = ("entry_point", "test")

    def with_references(self, raw: pl.DataFrame) -> pl.DataFrame:
        refs = [code_reference("humaneval", r["entry_point"], r["test"]) for r in raw.to_dicts()]
        return raw.with_columns(pl.Series("reference_json", refs, dtype=pl.String))


@TASKS.register("mbpp", verifier="sandbox", dataset=True)
class MBPPTask(CodeTask):
    defaults = {"question": "text", "answer": "reference_json", "solution": "code", "id": "task_id"}
    default_template = '"""\n{question}\n"""\n'
    needs = ("test_list",)

    def with_references(self, raw: pl.DataFrame) -> pl.DataFrame:
        rows = raw.to_dicts()
        refs = [
            code_reference("mbpp", _mbpp_entry(r), list(r["test_list"] or []), r.get("test_setup_code") or "")
            for r in rows
        ]
        # MBPP prompts show the first test, which names the function and its signature.
        raw = raw.with_columns(pl.Series("text", [f"{r['text']}\n{(r['test_list'] or [''])[0]}" for r in rows]))
        return raw.with_columns(pl.Series("reference_json", refs, dtype=pl.String))


def _mbpp_entry(row: dict) -> str:
    for text in [*(row.get("test_list") or []), row.get("code") or ""]:
        m = re.search(r"(?:assert\s+(?:not\s+)?\(?\s*|def\s+)([A-Za-z_]\w*)\s*\(", text)
        if m and m[1] not in ("set", "math", "abs", "round", "sorted", "str", "int", "float", "list", "len"):
            return m[1]
    return ""


def task_plugin(cfg: TaskConfig) -> Plugin:
    """The registry entry of the configured task (a built-in, an entry point or user code)."""
    return TASKS.get(cfg.name)


def default_verifier(cfg: TaskConfig) -> str:
    """The verifier a task's references are scored with unless the config names one."""
    return task_plugin(cfg).caps.verifier


def selection_verifier(cfg: ExperimentConfig) -> Verifier:
    """The verifier that judges a round's samples (and rewards a grpo round's rollouts):
    ExperimentConfig.verifier_spec, verification.verifier else the task's own."""
    return get_verifier(cfg.verifier_spec(), cfg.verification)


def reference_verifier(cfg: ExperimentConfig) -> Verifier:
    """The verifier evaluation scores with (ExperimentConfig.evaluation_verifier): the one that
    selects training rows when it checks references, else the task's own; never a label-free one."""
    return get_verifier(cfg.evaluation_verifier(), cfg.verification)


def load_chat_tokenizer(path: str | None):
    """The tokenizer whose chat template renders prompts; a clear error when it has none."""
    from transformers import AutoTokenizer

    if not path:
        raise ValueError("task.chat_template needs a tokenizer (model.base)")
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise ValueError(f"cannot load the tokenizer of {path!r} for chat templates: {exc}") from None
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"the tokenizer of {path!r} has no chat template; set task.chat_template: false")
    return tok


class UserTurn:
    """One user turn of a chat template, split around its content, so that a recipe's
    text template (STaR's hint, Re-ReST's reflection, a judge's question) fills in the
    question rather than the rendered prompt, and the result is one user turn again."""

    _MARK = "\x00selftaught-question\x00"

    def __init__(self, chat_tokenizer):
        rendered = chat_tokenizer.apply_chat_template(
            [{"role": "user", "content": self._MARK}], tokenize=False, add_generation_prompt=True
        )
        if rendered.count(self._MARK) != 1:
            raise ValueError("the chat template does not render a user message verbatim")
        self.prefix, self.suffix = rendered.split(self._MARK)

    def unwrap(self, prompt: str) -> str:
        """The user message of a rendered prompt (the prompt itself if it is not one)."""
        if (
            prompt.startswith(self.prefix)
            and prompt.endswith(self.suffix)
            and len(prompt) >= len(self.prefix) + len(self.suffix)
        ):
            return prompt[len(self.prefix) : len(prompt) - len(self.suffix)]
        return prompt

    def wrap(self, text: str) -> str:
        return self.prefix + text + self.suffix


def user_turn(cfg: TaskConfig, tokenizer: str | None) -> UserTurn | None:
    """The task's chat turn (None for plain-text prompts)."""
    return UserTurn(load_chat_tokenizer(tokenizer)) if cfg.chat_template else None


@TASKS.register("dataset", verifier="exact_match", dataset=True, needs_test=False, contamination_check=True)
class TableTask(DatasetTask):
    """Any table of problems: a .jsonl / .json / .parquet / .csv file or a local `datasets`
    folder, columns mapped in task.train (question, answer, and optionally solution, id,
    difficulty). Without task.test, task.train is split: task.test_share of its rows, picked by
    a hash of (task.seed, id), are held out. Every column of a row reaches the verifier (the
    prompts' `fields`). Held-out rows whose normalized question is also a training row's are
    reported (`contamination()`, the eval_prompts metadata) and kept out of the pools, the warm
    start and the few-shot exemplars."""

    defaults = {
        "question": "question",
        "answer": "answer",
        "solution": "solution",
        "id": "id",
        "difficulty": "difficulty",
    }
    optional = ("id", "solution", "difficulty")
    default_template = "{question}"
    keep_fields = True

    @cached_property
    def _sides(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(training rows, held-out rows), before the contamination check."""
        if self.cfg.test is not None:
            return self._load("train"), self._load("test")
        every = self._load("train")  # one file: a deterministic split by id
        held = every["id"].map_elements(self._held_out, return_dtype=pl.Boolean)
        return every.filter(~held), every.filter(held)

    def _held_out(self, row_id: str) -> bool:
        digest = hashlib.sha256(f"{self.cfg.seed}:{row_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.cfg.test_share

    @cached_property
    def _contaminated(self) -> list[str]:
        """Normalized questions that are both training and held-out rows."""
        train, test = self._sides
        return sorted(
            set(train.select(_normalized(pl.col("question")))["question"])
            & set(test.select(_normalized(pl.col("question")))["question"])
        )

    def _rows(self, which: str) -> pl.DataFrame:
        train, test = self._sides
        if which == "test":
            return test
        return train.filter(~_normalized(pl.col("question")).is_in(self._contaminated))

    def contamination(self) -> dict:
        """Held-out rows whose normalized question is also a training row's (kept out of training)."""
        test = self._rows("test")
        hit = test.filter(_normalized(pl.col("question")).is_in(self._contaminated))
        return {
            "contaminated_eval_rows": hit.height,
            "contaminated_eval_share": hit.height / max(test.height, 1),
            "contaminated_eval_ids": hit["id"].head(20).to_list(),
        }

    def eval_set(self, exclude: set[str]) -> pl.DataFrame:
        rows = self._rows("test")
        if rows.height == 0:
            raise ValueError(
                f"task {self.cfg.name}: no held-out rows (task.test_share {self.cfg.test_share:g} of "
                f"{sum(side.height for side in self._sides)} rows); raise task.test_share or give "
                "task.test"
            )
        return super().eval_set(exclude)


def _normalized(question: pl.Expr) -> pl.Expr:
    """A question for the contamination check: case, punctuation and spacing do not count."""
    return question.str.to_lowercase().str.replace_all(r"[^\w]+", " ").str.strip_chars().alias("question")


class CheckedTask:
    """A user task class: its tables are checked against the prompts schema as they come out,
    so a wrong column is an error naming the task and the method, not a failure downstream."""

    def __init__(self, task, name: str):
        self.task, self.name = task, name

    def _checked(self, method: str, *args) -> pl.DataFrame:
        out = getattr(self.task, method)(*args)
        if isinstance(out, list):
            out = pl.DataFrame(out, schema=schemas.PROMPTS) if out else schemas.empty("prompts")
        if not isinstance(out, pl.DataFrame):
            raise ValueError(
                f"task {self.name}: {method}() returned {type(out).__name__}, expected a polars "
                "DataFrame (or a list of dicts) with the prompts columns"
            )
        try:
            return schemas.validate(out, "prompts")
        except schemas.SchemaError as exc:
            raise ValueError(
                f"task {self.name}: {method}() returned a table that is not a prompts table: {exc}"
            ) from None

    def warm_start(self) -> pl.DataFrame:
        return self._checked("warm_start")

    def eval_set(self, exclude: set[str]) -> pl.DataFrame:
        return self._checked("eval_set", exclude)

    def pool(self, round_index: int, exclude: set[str], *rest) -> pl.DataFrame:
        return self._checked("pool", round_index, exclude, *rest)

    def __getattr__(self, name):
        return getattr(self.task, name)


def make_task(cfg: TaskConfig, tokenizer: str | None = None) -> Task:
    """The task for `cfg`; `tokenizer` (the base model path) renders chat templates."""
    plugin = task_plugin(cfg)
    obj = plugin.obj
    if plugin.builtin:
        return obj(cfg, tokenizer)
    if inspect.isclass(obj):
        takes = [
            p
            for p in inspect.signature(obj).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        cls: Any = obj  # a user class: its constructor's parameters are known only at run time
        made = cls(cfg, tokenizer) if len(takes) >= 2 else cls(cfg)
        return CheckedTask(made, plugin.name)
    return GeneratorTask(cfg, tokenizer, plugin.name, obj)
