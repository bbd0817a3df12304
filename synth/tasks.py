"""Task sources: where a round's prompts, the warm-start examples and the
held-out evaluation set come from. Each returns a `prompts` table."""

from __future__ import annotations

from functools import cached_property
from typing import Protocol

import polars as pl

from filters.mathverify import boxed_answer
from filters.numeric import gsm8k_reference
from filters.verifiers import get_verifier
from selftaught import schemas
from selftaught.config import ExperimentConfig, TaskConfig
from selftaught.round_keys import round_key
from synth import arithmetic, chat_tasks
from filters.code import code_reference
from synth.sources import Columns, SourceError, load_rows, read_source


class Task(Protocol):
    def warm_start(self) -> pl.DataFrame: ...

    def eval_set(self, exclude: set[str]) -> pl.DataFrame: ...

    def pool(self, round_index: int, exclude: set[str]) -> pl.DataFrame: ...


class ArithmeticTask:
    """Procedural addition; splits are drawn with separate seeds and kept disjoint."""

    def __init__(self, cfg: TaskConfig):
        self.cfg = cfg

    def warm_start(self) -> pl.DataFrame:
        return arithmetic.make_problems(self.cfg.warm_start, seed=self.cfg.seed * 7919 + 1, split="warm_start")

    def eval_set(self, exclude: set[str]) -> pl.DataFrame:
        return arithmetic.make_problems(self.cfg.eval, seed=self.cfg.seed * 7919 + 2, exclude=exclude, split="eval")

    def pool(self, round_index: int, exclude: set[str], counts: dict[int, int] | None = None) -> pl.DataFrame:
        """`counts` (a curriculum's) replaces the configured pool sizes."""
        return arithmetic.make_problems(
            counts or self.cfg.pool, seed=self.cfg.seed * 7919 + 1000 + round_index, exclude=exclude,
            split="pool", round_key=round_key(round_index),
        )


class ChatTask:
    """A procedural task asked in words (synth/chat_tasks.py), as one user turn of the
    model's chat template (`task.chat_template: false`: as plain text); `task.template`
    wraps the question either way."""

    def __init__(self, cfg: TaskConfig, tokenizer: str | None = None):
        self.cfg = cfg
        self.chat = load_chat_tokenizer(tokenizer) if cfg.chat_template else None

    def _render(self, question: str) -> str:
        text = (self.cfg.template or "{question}").format(question=question)
        if self.chat is None:
            return text
        return self.chat.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)

    def _draw(self, counts: dict[int, int], seed: int, exclude: set[str] = frozenset(), **where) -> pl.DataFrame:
        df = chat_tasks.make_problems(self.cfg.name, counts, seed, self._render, exclude, **where)
        # The assistant turn starts on its own line; plain text needs a space before the answer.
        return df if self.chat else df.with_columns(pl.lit(" ") + pl.col("target"))

    def warm_start(self) -> pl.DataFrame:
        return self._draw(self.cfg.warm_start, self.cfg.seed * 7919 + 1, split="warm_start")

    def eval_set(self, exclude: set[str]) -> pl.DataFrame:
        return self._draw(self.cfg.eval, self.cfg.seed * 7919 + 2, exclude, split="eval")

    def pool(self, round_index: int, exclude: set[str]) -> pl.DataFrame:
        return self._draw(self.cfg.pool, self.cfg.seed * 7919 + 1000 + round_index, exclude, split="pool",
                          round_key=round_key(round_index))


# Per task: default columns and how the reference is read from the answer column.
DEFAULTS = {
    "gsm8k": {"question": "question", "answer": "answer", "solution": "answer", "verifier": "numeric"},
    "math": {"question": "problem", "answer": "answer", "solution": "solution", "difficulty": "level",
             "verifier": "math"},
    # Code: the reference column is built from the tests (see CodeTask._prepare).
    "humaneval": {"question": "prompt", "answer": "reference_json", "solution": "canonical_solution", "id": "task_id",
                  "verifier": "sandbox"},
    "mbpp": {"question": "text", "answer": "reference_json", "solution": "code", "id": "task_id",
             "verifier": "sandbox"},
}
TEMPLATES = {"gsm8k": "Question: {question}\nAnswer:", "math": "Question: {question}\nAnswer:",
             "humaneval": "{question}", "mbpp": '"""\n{question}\n"""\n'}


def _reference(task: str, answer: str, solution: str) -> str:
    if task in ("humaneval", "mbpp"):
        return answer  # already the JSON reference
    if task == "gsm8k":
        return gsm8k_reference(answer) if "####" in answer else answer.strip()
    if answer.strip():
        return answer.strip()
    return boxed_answer(solution) or ""  # MATH without an answer field: the last \boxed{} of the solution


class DatasetTask:
    """GSM8K / MATH-style tasks from a dataset source; prompts use a template and few-shot exemplars."""

    target_prefix = " "  # "Answer:" + " " + solution

    def __init__(self, cfg: TaskConfig, tokenizer: str | None = None):
        self.cfg, self.defaults = cfg, DEFAULTS[cfg.name]
        self.template = cfg.template or TEMPLATES[cfg.name]
        self.chat = load_chat_tokenizer(tokenizer) if cfg.chat_template else None
        self._cache: dict[str, pl.DataFrame] = {}

    def _rows(self, which: str) -> pl.DataFrame:
        if which not in self._cache:
            src = getattr(self.cfg, which)
            d = self.defaults
            answer_col = None if src.label_free else (src.answer or d["answer"])
            raw = self._prepare(read_source(src.path, src.split, src.revision, src.subset), which)
            difficulty = src.difficulty or (d.get("difficulty") if d.get("difficulty") in raw.columns else None)
            solution = src.solution or (d["solution"] if d["solution"] in raw.columns else None)
            cols = Columns(question=src.question or d["question"], answer=answer_col, id=src.id or d.get("id"),
                           difficulty=difficulty, solution=solution)
            df = load_rows(raw, cols, src.on_invalid, source=f"task {self.cfg.name} {which} ({src.path})").rows
            refs = [_reference(self.cfg.name, a or "", s or "") if not src.label_free else ""
                    for a, s in zip(df["answer"], df["solution"])]
            self._cache[which] = df.with_columns(reference=pl.Series(refs, dtype=pl.String))
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


class CodeTask(DatasetTask):
    """HumanEval-format (prompt, entry_point, test) or MBPP-format (text, code, test_list) rows.

    The prompt is the task's text; the reference is JSON with the tests
    (filters/code.py); the warm-start target is the reference solution.
    """

    target_prefix = ""  # code continues the prompt exactly

    def _prepare(self, raw: pl.DataFrame, which: str) -> pl.DataFrame:
        src = getattr(self.cfg, which)
        if src.label_free or src.answer:
            return raw
        need = {"humaneval": ["entry_point", "test"], "mbpp": ["test_list"]}[self.cfg.name]
        missing = [c for c in need if c not in raw.columns]
        if missing:
            raise SourceError(f"task {self.cfg.name} {which} ({src.path}): column(s) {missing} not found; "
                              f"available: {raw.columns}")
        rows = raw.to_dicts()
        if self.cfg.name == "humaneval":
            refs = [code_reference("humaneval", r["entry_point"], r["test"]) for r in rows]
        else:
            refs = [code_reference("mbpp", _mbpp_entry(r), list(r["test_list"] or []), r.get("test_setup_code") or "")
                    for r in rows]
            # MBPP prompts show the first test, which names the function and its signature.
            raw = raw.with_columns(pl.Series("text", [f"{r['text']}\n{(r['test_list'] or [''])[0]}" for r in rows]))
        return raw.with_columns(pl.Series("reference_json", refs, dtype=pl.String))


def _mbpp_entry(row: dict) -> str:
    import re

    for text in [*(row.get("test_list") or []), row.get("code") or ""]:
        m = re.search(r"(?:assert\s+(?:not\s+)?\(?\s*|def\s+)([A-Za-z_]\w*)\s*\(", text)
        if m and m[1] not in ("set", "math", "abs", "round", "sorted", "str", "int", "float", "list", "len"):
            return m[1]
    return ""


def default_verifier(cfg: TaskConfig) -> str:
    """The verifier a task's references are scored with (evaluation always uses it)."""
    if cfg.name == "arithmetic":
        return "arithmetic"
    return "numeric" if cfg.name in chat_tasks.GENERATORS else DEFAULTS[cfg.name]["verifier"]


def verifier_name(cfg: ExperimentConfig) -> str:
    """The verifier that judges a round's samples: verification.verifier, else the task's own."""
    return cfg.verification.verifier or default_verifier(cfg.task)


def selection_verifier(cfg: ExperimentConfig):
    """The verifier that judges a round's samples (and rewards a grpo round's rollouts)."""
    return get_verifier(verifier_name(cfg), cfg.verification)


def reference_verifier(cfg: ExperimentConfig):
    """The verifier evaluation scores with: the task's own, against references,
    whatever verifier selects training rows."""
    return get_verifier(default_verifier(cfg.task), cfg.verification)


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
        rendered = chat_tokenizer.apply_chat_template([{"role": "user", "content": self._MARK}], tokenize=False,
                                                      add_generation_prompt=True)
        if rendered.count(self._MARK) != 1:
            raise ValueError("the chat template does not render a user message verbatim")
        self.prefix, self.suffix = rendered.split(self._MARK)

    def unwrap(self, prompt: str) -> str:
        """The user message of a rendered prompt (the prompt itself if it is not one)."""
        if prompt.startswith(self.prefix) and prompt.endswith(self.suffix) and len(prompt) >= len(self.prefix) + len(self.suffix):
            return prompt[len(self.prefix):len(prompt) - len(self.suffix)]
        return prompt

    def wrap(self, text: str) -> str:
        return self.prefix + text + self.suffix


def user_turn(cfg: TaskConfig, tokenizer: str | None) -> UserTurn | None:
    """The task's chat turn (None for plain-text prompts)."""
    return UserTurn(load_chat_tokenizer(tokenizer)) if cfg.chat_template else None


def make_task(cfg: TaskConfig, tokenizer: str | None = None) -> Task:
    """The task for `cfg`; `tokenizer` (the base model path) renders chat templates."""
    if cfg.name == "arithmetic":
        return ArithmeticTask(cfg)
    if cfg.name in chat_tasks.GENERATORS:
        return ChatTask(cfg, tokenizer)
    if cfg.name in ("humaneval", "mbpp"):
        return CodeTask(cfg, tokenizer)
    if cfg.name in DEFAULTS:
        return DatasetTask(cfg, tokenizer)
    raise ValueError(f"unknown task {cfg.name!r}")
