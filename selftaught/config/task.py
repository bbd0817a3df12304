"""task: what the model is asked (a procedural task or a dataset) and how many prompts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from selftaught.config.limits import MAX_PROMPTS, Strict
from selftaught.plugins import TASKS, Plugin, named


def _counts(v: dict[int, int]) -> dict[int, int]:
    for d, n in v.items():
        if not 1 <= d <= 12:
            raise ValueError(f"difficulty (digit count) must be 1..12, got {d}")
        if not 0 <= n <= MAX_PROMPTS:
            raise ValueError(f"count for difficulty {d} must be 0..{MAX_PROMPTS:,}, got {n}")
    return dict(sorted(v.items()))


class SourceConfig(Strict):
    """Where a dataset task's rows come from; columns left empty use the task's defaults."""

    path: str = Field(description="hub dataset id, local dataset folder, or .jsonl/.json/.parquet/.csv file")
    split: str = Field("train", description="split to read from a hub dataset or dataset folder (a file is read whole)")
    revision: str | None = Field(
        None, description="hub dataset revision (branch, tag or commit); None: the default branch"
    )
    subset: str | None = Field(None, description="hub dataset configuration name (load_dataset's name)")
    question: str | None = Field(None, description="column holding the question (default: the task's)")
    answer: str | None = Field(None, description="column holding the reference answer (default: the task's)")
    solution: str | None = Field(
        None,
        description="column with a worked solution, the target of few-shot and "
        "warm-start rows (default: the task's, else the answer column)",
    )
    id: str | None = Field(
        None, description="column with a unique row id (default: the task's, else a hash of the question)"
    )
    difficulty: str | None = Field(
        None,
        description="column with a difficulty level, its first integer read (default: the task's, else every row is 1)",
    )
    label_free: bool = Field(False, description="ignore any reference column (majority-vote pseudo-labels)")
    on_invalid: Literal["error", "skip"] = Field(
        "error",
        description="rows with an empty question or answer, or a "
        "missing or duplicate id: error lists them, skip drops them",
    )


class CurriculumConfig(Strict):
    """Arithmetic: the pool holds difficulties up to a level plus a probe of the next one;
    once the probe's pass@n beats `open_at`, the next round opens that difficulty."""

    probe: int = Field(30, ge=1, le=MAX_PROMPTS, description="problems of the next difficulty sampled each round")
    open_at: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share of probe problems with a correct sample above which the next difficulty opens (0: any)",
    )


class TaskConfig(Strict):
    """What the model is asked (a procedural task drawn per difficulty, or a dataset task) and how many prompts."""

    name: str = Field(
        "arithmetic",
        description="a built-in task (selftaught plugins lists them: arithmetic, "
        "list_max, addition, story, gsm8k, math, humaneval, mbpp, dataset), an installed package's "
        "(entry point group selftaught.tasks), module:attribute, or file.py:attribute beside the config",
    )
    train: SourceConfig | None = Field(None, description="dataset tasks: the pool, few-shot and warm-start rows")
    test: SourceConfig | None = Field(
        None,
        description="dataset tasks: the held-out evaluation rows (task "
        "dataset: optional, else task.test_share of task.train is held out)",
    )
    test_share: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="task dataset without task.test: the share of task.train "
        "rows held out (picked by a hash of task.seed and the row id)",
    )
    options: dict[str, Any] = Field({}, description="a user task's own settings (task_config.options)")
    pool_size: int = Field(64, ge=1, le=MAX_PROMPTS, description="dataset tasks: prompts per round")
    eval_size: int = Field(64, ge=1, le=MAX_PROMPTS, description="dataset tasks: held-out prompts")
    warm_start_size: int = Field(
        0, ge=0, le=MAX_PROMPTS, description="dataset tasks: worked examples for the warm start"
    )
    few_shot: int = Field(0, ge=0, le=64, description="dataset tasks: exemplars from train prepended to each prompt")
    template: str | None = Field(
        None,
        description="dataset and chat tasks: prompt template with {question}; default "
        "'Question: {question}\\nAnswer:' (gsm8k, math), '{question}' (humaneval), "
        "a docstring with the task and its first test (mbpp)",
    )
    chat_template: bool = Field(
        False,
        description="dataset and chat tasks (list_max, addition, story): render "
        "prompts with the base model's chat template (few-shot exemplars become "
        "earlier turns)",
    )
    warm_start: dict[int, int] = Field(
        {1: 30, 2: 120, 3: 110, 4: 40},
        description="procedural tasks: worked warm-start examples per difficulty ({difficulty: count})",
    )
    pool: dict[int, int] = Field(
        {3: 150, 4: 600, 5: 150},
        description="procedural tasks: prompts per difficulty, drawn anew each round ({difficulty: count})",
    )
    eval: dict[int, int] = Field(
        {1: 30, 2: 100, 3: 100, 4: 200, 5: 100},
        description="procedural tasks: held-out prompts per difficulty ({difficulty: count})",
    )
    seed: int = Field(
        0, description="seed of the drawn problems (procedural tasks), the dataset pool's order and the held-out split"
    )
    frontier: int | Literal["auto"] = Field(
        "auto",
        description="difficulty reported as the headline; auto = the hardest pool difficulty "
        "the base model solves at least 10% of (self-training can only lift what it can sample)",
    )
    curriculum: CurriculumConfig | None = Field(
        None, description="arithmetic: widen the pool one difficulty at a time, starting at the frontier"
    )

    _v = field_validator("warm_start", "pool", "eval")(_counts)

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        named("task", v)
        return v

    def plugin(self) -> Plugin:
        """The task's registry entry: its capabilities and origin (selftaught.plugins)."""
        return TASKS.get(self.name)

    def procedural(self) -> bool:
        """Drawn per difficulty level (arithmetic, the chat tasks), not read from a dataset."""
        return self.plugin().caps.procedural

    def frontier_pool(self) -> list[int]:
        """Difficulties the auto frontier picks from: a procedural task's pool; for dataset
        tasks none are configured, so the evaluated difficulties are used."""
        return list(self.pool) if self.procedural() else []

    @model_validator(mode="after")
    def _frontier_evaluated(self):
        plugin = self.plugin()
        caps, shown = plugin.caps, plugin.name
        if self.template is not None and "{question}" not in self.template:
            raise ValueError("template must contain {question}")
        if self.template is not None and caps.fixed_prompts:
            raise ValueError(f"task.template does not apply to the {shown} task (its prompts are fixed)")
        if caps.procedural and caps.min_level > 1:
            for split in ("warm_start", "pool", "eval"):
                if short := [d for d in getattr(self, split) if d < caps.min_level]:
                    raise ValueError(
                        f"{shown} levels are {caps.level_name}s: {caps.min_level} or more (task.{split} "
                        f"has {short}; its default is the arithmetic task's)"
                    )
        if caps.dataset:
            wanted = ("train", "test") if caps.needs_test else ("train",)
            missing = [k for k in wanted if getattr(self, k) is None]
            if missing:
                raise ValueError(f"task {shown!r} needs {' and '.join(missing)} (a dataset source)")
        if not caps.procedural:
            return self
        if self.frontier != "auto" and self.frontier not in self.eval:
            raise ValueError(f"frontier difficulty {self.frontier} has no eval problems (eval: {self.eval})")
        if sum(self.pool.values()) == 0:
            raise ValueError("pool is empty: each round needs problems to sample")
        return self

    @model_validator(mode="after")
    def _curriculum_arithmetic(self):
        if self.curriculum is not None and not self.plugin().caps.curriculum:
            able = [p.name for p in TASKS.entries() if p.caps.curriculum]
            raise ValueError(
                f"task.curriculum applies to {', '.join(able)} only (a pool drawn per difficulty that "
                "can widen one level at a time)"
            )
        return self
