"""The project's verifiers as online-RL reward functions, every rollout kept as data.

`VerifierReward` is a plain TRL reward function, `(prompts, completions, **columns) ->
list[float | None]`: correct 1.0, incorrect 0.0, unverifiable None (TRL leaves that
completion out of its group's baseline and gives it no advantage; it is counted, never 0).
A verifier whose reward is a score (capability `graded`: a user's TRL-style reward function)
gives its score instead. A `fields` column (every column of the task's row) reaches a
verifier that reads rows, as it does offline.
When the unverifiable share of the round's rollouts so far is over `max_unverifiable_share`
(checked once `min_rollouts` are in: one batch of a few prompts is too noisy to judge),
training stops with `TooManyUnverifiable`, the online form of the offline rounds'
blocking check.

Each call writes its rollouts (samples and verdict columns, the training step that
generated them) as one atomic shard `<dir>/step-<step>.parquet`; `forget_from(step)` drops
the shards a resumed run will generate again, so the rollouts table never holds a rollout
twice. `table()` is the round's rollouts table (selftaught.schemas ROLLOUTS).

Label-free rewards (the majority verifier, TTRL) need no reference: the GRPO dataset then
has no reference column and this function never receives one.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl

from filters.verifiers import Verifier, verify
from selftaught import schemas
from selftaught.files import read_parquet, write_parquet_atomic

REWARD = {schemas.CORRECT: 1.0, schemas.INCORRECT: 0.0}


class TooManyUnverifiable(RuntimeError):
    """Most of a batch could not be verified: rewards would be noise."""


class VerifierReward:
    def __init__(
        self,
        verifier: Verifier,
        rollouts_dir: str | Path,
        round_key: str,
        policy_id: str,
        max_unverifiable_share: float = 1.0,
        generation: dict | None = None,
        min_rollouts: int = 256,
    ):
        self.verifier, self.dir = verifier, Path(rollouts_dir)
        self.round_key, self.policy_id = round_key, policy_id
        self.max_unverifiable_share, self.min_rollouts = max_unverifiable_share, min_rollouts
        self.generation = {
            "backend": "trl",
            "temperature": 1.0,
            "top_p": 1.0,
            "max_new_tokens": 0,
            "seed": 0,
            **(generation or {}),
        }
        self.__name__ = f"{verifier.name}_reward"  # TRL logs rewards under the function's name
        plugin = getattr(verifier, "plugin", None)
        self.graded = bool(plugin is not None and plugin.caps.graded)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._seen, self._verdicts = self._counts()

    # ---- the reward function ------------------------------------------------------------------

    def __call__(
        self,
        prompts: list[str],
        completions: list[str],
        prompt_id: list[str],
        reference: list[str] | None = None,
        fields: list[str] | None = None,
        trainer_state=None,
        **_,
    ) -> list[float | None]:
        step = int(trainer_state.global_step) if trainer_state is not None else 0
        if completions and not isinstance(completions[0], str):  # conversational: the assistant's text
            completions = [c[-1]["content"] for c in completions]
        idx = []
        for pid in prompt_id:
            idx.append(self._seen[pid])
            self._seen[pid] += 1
        samples = pl.DataFrame(
            {
                "round": [self.round_key] * len(prompts),
                "prompt_id": prompt_id,
                "sample_idx": pl.Series(idx, dtype=pl.Int32),
                "prompt": prompts,
                "completion": completions,
            }
        )
        refs = pl.DataFrame(
            {
                "prompt_id": prompt_id,
                "reference": reference or [""] * len(prompts),
                "fields": pl.Series(fields or [None] * len(prompts), dtype=pl.String),
            }
        ).unique("prompt_id")
        verdicts = verify(self.verifier, refs, samples)
        self._write(step, samples, verdicts)
        self._verdicts.update(verdicts["verdict"].to_list())
        total = sum(self._verdicts.values())
        share = self._verdicts[schemas.UNVERIFIABLE] / total if total else 0.0
        if total >= self.min_rollouts and share > self.max_unverifiable_share:
            reasons = self.table().filter(pl.col("verdict") == schemas.UNVERIFIABLE)["reason"]
            raise TooManyUnverifiable(
                f"step {step}: {share:.0%} of the {total} rollouts so far unverifiable (bound "
                f"verification.max_unverifiable_share {self.max_unverifiable_share:.0%}); most common reason: "
                f"{reasons.value_counts(sort=True)['reason'][0]!r}"
            )
        if self.graded:
            return [None if v == schemas.UNVERIFIABLE else r for v, r in zip(verdicts["verdict"], verdicts["reward"])]
        return [REWARD.get(v) for v in verdicts["verdict"]]

    def close(self) -> None:
        """Stop the verifier's worker process, if it has one (user verifiers)."""
        if hasattr(self.verifier, "close"):
            self.verifier.close()

    # ---- the rollouts table -------------------------------------------------------------------

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("step-*.parquet"))

    def _write(self, step: int, samples: pl.DataFrame, verdicts: pl.DataFrame) -> None:
        # One generation batch per step (training.grpo.trl may not change that): one shard each.
        rows = samples.join(verdicts.drop("round"), on=["prompt_id", "sample_idx"]).with_columns(
            reward=(
                pl.when(pl.col("verdict") != schemas.UNVERIFIABLE).then(pl.col("reward"))
                if self.graded
                else pl.col("verdict").replace_strict(REWARD, default=None, return_dtype=pl.Float64)
            ),  # as given
            policy_id=pl.lit(self.policy_id),
            policy_hash=pl.lit(""),
            step=pl.lit(step, pl.Int64),
            **{k: pl.lit(v) for k, v in self.generation.items()},
        )
        rows = schemas.validate(rows.select(list(schemas.ROLLOUTS)), "rollouts")
        write_parquet_atomic(rows, self.dir / f"step-{step:07d}.parquet")

    def _counts(self) -> tuple[Counter, Counter]:
        """Rollouts so far per prompt (the next sample_idx) and per verdict."""
        seen: Counter[str] = Counter()
        verdicts: Counter[str] = Counter()
        for path in self._shards():
            df = read_parquet(path, columns=["prompt_id", "verdict"])
            seen.update(df["prompt_id"].to_list())
            verdicts.update(df["verdict"].to_list())
        return seen, verdicts

    def forget_from(self, step: int) -> int:
        """Drop rollouts generated at `step` or later (a resumed run generates them again);
        returns how many shards went."""
        gone = [p for p in self._shards() if int(p.stem.split("-")[1]) >= step]
        for p in gone:
            p.unlink()
        self._seen, self._verdicts = self._counts()
        return len(gone)

    def table(self) -> pl.DataFrame:
        shards = self._shards()
        if not shards:
            return schemas.empty("rollouts")
        return schemas.validate(pl.concat([read_parquet(p) for p in shards]), "rollouts").sort(
            "step", "prompt_id", "sample_idx"
        )
