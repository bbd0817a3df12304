"""One round asset's view of its run: built once per asset call, so no asset body repeats
the experiment lookup, the round key arithmetic, the parent lookup or the sampling wiring."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import dagster as dg
import polars as pl

from assets.generation import generate
from assets.parent import Parent, resolve_parent
from assets.resources import ExperimentResource
from assets.run_log import log_progress
from filters.verifiers import Verifier, verify
from selftaught.config import ExperimentConfig
from selftaught.round_keys import parent_key, round_index
from selftaught.store import Store
from synth.backends import SamplingParams
from synth.sampling import round_params
from synth.tasks import UserTurn, selection_verifier
from train.plan import Policy
from train.tracking import Tracking


@dataclass(frozen=True)
class RoundContext:
    context: dg.AssetExecutionContext
    experiment: ExperimentResource  # already the running asset's experiment (ExperimentResource.of)

    @classmethod
    def of(cls, context: dg.AssetExecutionContext, experiment: ExperimentResource) -> RoundContext:
        return cls(context, experiment.of(context))

    # ---- identity ---------------------------------------------------------------------------

    @property
    def config(self) -> ExperimentConfig:
        """The config this round runs: its phase's, if `phases` covers it (ExperimentConfig.for_round)."""
        return self.experiment.config.for_round(self.index)

    @property
    def phase(self) -> str | None:
        """The name of the phase this round runs (None without phases)."""
        return self.experiment.config.phase_label(self.index)

    @cached_property
    def store(self) -> Store:
        return self.experiment.store

    @property
    def key(self) -> str:
        """This round's key (r001, ...)."""
        return self.context.partition_key

    @property
    def index(self) -> int:
        return round_index(self.key)

    @property
    def parent_key(self) -> str | None:
        """The previous round's key; None in round 1."""
        return parent_key(self.key)

    def log(self, message: str) -> None:
        self.context.log.info(f"{self.key}: {message}")

    # ---- what the round reads --------------------------------------------------------------

    @cached_property
    def parent(self) -> Parent:
        """The policy that generates this round's samples (Dagster's records; assets.parent)."""
        return resolve_parent(self.context, self.store)

    @property
    def parent_policy(self) -> Policy:
        p = self.parent
        return Policy(p.policy_id, p.artifact, p.weights_hash)

    @cached_property
    def user_turn(self) -> UserTurn | None:
        return self.experiment.user_turn(self.context.log.info)

    @property
    def verifier_name(self) -> str:
        return self.config.verifier_spec()

    @cached_property
    def verifier(self) -> Verifier:
        """The verifier that judges this round's samples, built once per asset call (a user
        verifier's worker process serves every batch of the call)."""
        return selection_verifier(self.config)

    @cached_property
    def tracking(self) -> Tracking | None:
        """This round's experiment trackers (operations.tracking); None when off."""
        cfg = self.config
        return Tracking.from_config(
            cfg.operations.tracking,
            cfg.name,
            self.key,
            self.store.root,
            {"parent_policy": self.parent.policy_id, "config_hash": cfg.round_hash()},
        )

    def check(self, prompts: pl.DataFrame, samples: pl.DataFrame) -> pl.DataFrame:
        """The configured (non-generating) verifier's verdicts on `samples` of `prompts`."""
        return verify(self.verifier, prompts, samples)

    # ---- generation with the parent policy ---------------------------------------------------

    def params(self, temperature: float, n: int) -> SamplingParams:
        return round_params(self.config.sampling, self.index, temperature, n)

    def sample(self, name: str, prompts: pl.DataFrame, params: SamplingParams) -> pl.DataFrame:
        """`prompts` sampled by the parent policy as generation job `name` (sharded, resumable)."""
        cfg, parent = self.config, self.parent
        return generate(
            self.context,
            cfg,
            self.store,
            name=name,
            prompts=prompts,
            params=params,
            round_key=self.key,
            policy_id=parent.policy_id,
            policy_hash=parent.weights_hash,
            artifact=parent.artifact,
            backend=cfg.sampling.backend,
            batch_size=cfg.sampling.batch_size,
            progress=log_progress(self.context, name),
        )
