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
from selftaught.rounds import round_key
from synth import arithmetic
from synth.sources import Columns, load_rows, read_source


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

    def pool(self, round_index: int, exclude: set[str]) -> pl.DataFrame:
        return arithmetic.make_problems(
            self.cfg.pool, seed=self.cfg.seed * 7919 + 1000 + round_index, exclude=exclude,
            split="pool", round_key=round_key(round_index),
        )


# Per task: default columns and how the reference is read from the answer column.
DEFAULTS = {
    "gsm8k": {"question": "question", "answer": "answer", "solution": "answer", "verifier": "numeric"},
    "math": {"question": "problem", "answer": "answer", "solution": "solution", "difficulty": "level",
             "verifier": "math"},
}


def _reference(task: str, answer: str, solution: str) -> str:
    if task == "gsm8k":
        return gsm8k_reference(answer) if "####" in answer else answer.strip()
    if answer.strip():
        return answer.strip()
    return boxed_answer(solution) or ""  # MATH without an answer field: the last \boxed{} of the solution


class DatasetTask:
    """GSM8K / MATH-style tasks from a dataset source; prompts use a template and few-shot exemplars."""

    def __init__(self, cfg: TaskConfig, tokenizer: str | None = None):
        self.cfg, self.defaults = cfg, DEFAULTS[cfg.name]
        self.chat = load_chat_tokenizer(tokenizer) if cfg.chat_template else None
        self._cache: dict[str, pl.DataFrame] = {}

    def _rows(self, which: str) -> pl.DataFrame:
        if which not in self._cache:
            src = getattr(self.cfg, which)
            d = self.defaults
            answer_col = None if src.label_free else (src.answer or d["answer"])
            raw = read_source(src.path, src.split, src.revision, src.subset)
            difficulty = src.difficulty or (d.get("difficulty") if d.get("difficulty") in raw.columns else None)
            solution = src.solution or (d["solution"] if d["solution"] in raw.columns else None)
            cols = Columns(question=src.question or d["question"], answer=answer_col, id=src.id,
                           difficulty=difficulty, solution=solution)
            df = load_rows(raw, cols, src.on_invalid, source=f"task {self.cfg.name} {which} ({src.path})").rows
            refs = [_reference(self.cfg.name, a or "", s or "") if not src.label_free else ""
                    for a, s in zip(df["answer"], df["solution"])]
            self._cache[which] = df.with_columns(reference=pl.Series(refs, dtype=pl.String))
        return self._cache[which]

    @cached_property
    def _shots(self) -> list[tuple[str, str]]:
        """Few-shot exemplars as (rendered question, solution), built once per task."""
        shots = self._rows("train").head(self.cfg.few_shot)
        return [(self.cfg.template.format(question=q), s.strip()) for q, s in zip(shots["question"], shots["solution"])]

    @cached_property
    def _shot_text(self) -> str:
        return "".join(f"{q} {s}\n\n" for q, s in self._shots)

    def _render(self, question: str) -> str:
        text = self.cfg.template.format(question=question)
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
            (pl.lit(" ") + pl.col("solution").fill_null("")).alias("target"),
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
        return self._prompts(self._rows("test").head(self.cfg.eval_size), "eval")

    def pool(self, round_index: int, exclude: set[str]) -> pl.DataFrame:
        rows = self._train_pool()
        n = self.cfg.pool_size
        if rows.height == 0:
            raise ValueError(f"task {self.cfg.name}: no train rows left for pools after few-shot and warm start")
        start = ((round_index - 1) * n) % rows.height  # wraps around when the data runs out
        picked = pl.concat([rows, rows]).slice(start, min(n, rows.height))
        out = self._prompts(picked, "pool", round_key(round_index))
        return out.filter(~pl.col("prompt_id").is_in(list(exclude)))


def default_verifier(cfg: TaskConfig) -> str:
    """The verifier a task's references are scored with (evaluation always uses it)."""
    return "arithmetic" if cfg.name == "arithmetic" else DEFAULTS[cfg.name]["verifier"]


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


def make_task(cfg: TaskConfig, tokenizer: str | None = None) -> Task:
    """The task for `cfg`; `tokenizer` (the base model path) renders chat templates."""
    if cfg.name == "arithmetic":
        return ArithmeticTask(cfg)
    if cfg.name in DEFAULTS:
        return DatasetTask(cfg, tokenizer)
    raise ValueError(f"unknown task {cfg.name!r}")
