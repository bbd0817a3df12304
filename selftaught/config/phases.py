"""phases: rounds of one experiment that run other settings (SFT rounds, then RL rounds).

(A round's own steps, prompts -> samples -> ... -> evaluation, are its stages; a phase is a range
of whole rounds.)

    phases:
      - rounds: 1-2            # a range: 1-2, 3+ (round 3 on), or one round: 3
        name: sft              # shown as the round's `phase` in the UI, status and provenance
      - rounds: 3+
        name: grpo
        training: {objective: grpo, learning_rate: 1.0e-4}

A phase lays its sections over the experiment's config, key by key like `extends:` does, for
the rounds it covers; rounds no phase covers run the experiment's config. A phase may set
sampling, verification, selection, repair and training: task, model and evaluation stay the
experiment's, so every round draws from the same task and is scored on the same held-out set.
Each round's resolved config is what its hash, provenance and `validate --show --round N` use
(ExperimentConfig.for_round), so changing a later phase leaves earlier rounds current.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from selftaught.config.limits import MAX_ROUNDS, Strict

# The sections a phase may set (the others are the experiment's, the same in every round).
PHASE_SECTIONS = ("sampling", "verification", "selection", "repair", "training")

_RANGE = re.compile(r"^\s*(\d+)\s*(?:(-)\s*(\d+)?|(\+))?\s*$")


def parse_rounds(value: int | str) -> tuple[int, int | None]:
    """`3` -> (3, 3); `1-2` -> (1, 2); `3+` or `3-` -> (3, None): the phase's first and last
    round (None: every round from the first on)."""
    if isinstance(value, bool):
        raise ValueError(f"rounds must be a round or a range such as 1-2 or 3+, got {value!r}")
    if isinstance(value, int):
        return value, value
    m = _RANGE.match(str(value))
    if not m:
        raise ValueError(f"rounds must be a round or a range such as 1-2 or 3+, got {value!r}")
    first = int(m.group(1))
    if m.group(3) is not None:
        return first, int(m.group(3))
    return (first, None) if (m.group(2) or m.group(4)) else (first, first)


class PhaseConfig(Strict):
    """Settings for a range of rounds, laid over the experiment's config."""

    rounds: int | str = Field(description="the rounds it covers: 3, 1-2, or 3+ (round 3 and every later one)")
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="a label for its rounds (the `phase` in the UI, status and provenance); default phase<k>",
    )
    sampling: dict[str, Any] | None = Field(None, description="sampling keys for these rounds")
    verification: dict[str, Any] | None = Field(None, description="verification keys for these rounds")
    selection: dict[str, Any] | None = Field(None, description="selection keys for these rounds")
    repair: dict[str, Any] | None = Field(None, description="repair keys for these rounds")
    training: dict[str, Any] | None = Field(None, description="training keys for these rounds")

    @field_validator("rounds")
    @classmethod
    def _range(cls, v: int | str) -> int | str:
        first, last = parse_rounds(v)
        if first < 1:
            raise ValueError(f"rounds are numbered from 1, got {v!r}")
        if last is not None and last < first:
            raise ValueError(f"rounds {v!r} is empty (its last round is before its first)")
        if max(first, last or 0) > MAX_ROUNDS:
            raise ValueError(f"rounds {v!r} is beyond the limit of {MAX_ROUNDS} rounds")
        return v

    def span(self) -> tuple[int, int | None]:
        return parse_rounds(self.rounds)

    def covers(self, index: int) -> bool:
        first, last = self.span()
        return first <= index and (last is None or index <= last)

    def overlay(self) -> dict[str, dict]:
        """The sections it sets, as a config mapping to lay over the experiment's."""
        return {s: getattr(self, s) for s in PHASE_SECTIONS if getattr(self, s) is not None}

    def describe(self) -> str:
        first, last = self.span()
        return f"round {first}" if last == first else f"rounds {first}-{last}" if last else f"rounds {first}+"
