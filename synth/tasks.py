"""Task sources: where a round's prompts, the warm-start examples and the
held-out evaluation set come from. Each returns a `prompts` table."""

from __future__ import annotations

from typing import Protocol

import polars as pl

from selftaught.config import TaskConfig
from selftaught.rounds import round_key
from synth import arithmetic


class Task(Protocol):
    verifier: str

    def warm_start(self) -> pl.DataFrame: ...

    def eval_set(self, exclude: set[str]) -> pl.DataFrame: ...

    def pool(self, round_index: int, exclude: set[str]) -> pl.DataFrame: ...


class ArithmeticTask:
    """Procedural addition; splits are drawn with separate seeds and kept disjoint."""

    verifier = "arithmetic"

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


def make_task(cfg: TaskConfig) -> Task:
    if cfg.name == "arithmetic":
        return ArithmeticTask(cfg)
    raise ValueError(f"unknown task {cfg.name!r}")
