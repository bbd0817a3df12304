"""What a round's fine-tune starts from, trains against and with which settings.

`plan_round` decides, from the training config, the parent policy and the base model:
- init: the parent (training.init continue) or the base (restart);
- adapter_init: with LoRA, a parent that is an adapter on the base keeps training that
  adapter on the base weights, so every round's policy is one adapter on one base model
  (what vLLM serves without merging);
- reference (an objective with a reference model, DPO): the previous policy or the base;
- settings: the objective's settings for this round (SFTSettings, DPOSettings, GRPOSettings).
`run_plan` trains it, in this process or under `accelerate launch` (training.launcher). The
objectives are registered in train/sft.py, train/dpo.py and train/grpo.py
(selftaught.plugins.OBJECTIVES); this module asks their capabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from selftaught.plugins import OBJECTIVES
from train.artifact import adapter_path, model_path, read_provenance, verifier_dir
from train.dpo import DPOSettings, train_dpo, verifier_settings
from train.grpo import GRPOSettings
from train.launch import launch
from train.sft import SFT, SFTSettings
from train.tracking import Tracking


@dataclass(frozen=True)
class Policy:
    """A trained model artifact: "base" or a round key, its folder and weights hash."""

    policy_id: str
    artifact: Path
    weights_hash: str


@dataclass(frozen=True)
class TrainingPlan:
    objective: str  # a registered objective: sft | dpo | grpo
    init: Path  # the artifact folder training starts from
    adapter_init: Path | None  # a LoRA adapter to keep training on `init`
    reference: Policy | None  # the fixed reference of an objective with one (DPO)
    settings: SFTSettings | DPOSettings | GRPOSettings
    adapter_on_base: bool  # the result is a LoRA adapter on the base model

    @property
    def data_table(self) -> str:
        """The round table this objective trains on."""
        return data_table(self.objective)

    def describe(self, parent: Policy, rows: int) -> str:
        objective = OBJECTIVES.get(self.objective)
        start = self.init.name if objective.caps.reference_model or not self.adapter_init else parent.policy_id
        return objective.obj.describe(self.settings, start, rows, self.reference)


def plan_round(t, index: int, parent: Policy, base: Path) -> TrainingPlan:
    """Round `index`'s plan from a `selftaught.config.TrainingConfig`, its parent policy and the
    base model's artifact folder."""
    init = parent.artifact if t.init == "continue" else base
    adapter_init = None
    if t.method == "lora" and init != base and _adapter_on_base(parent.artifact, base):
        init, adapter_init = base, adapter_path(parent.artifact)
    reference = None
    if OBJECTIVES.get(t.objective).caps.reference_model:
        reference = (
            parent if t.dpo.reference == "previous" else Policy("base", base, read_provenance(base)["weights_hash"])
        )
    return TrainingPlan(
        t.objective,
        init,
        adapter_init,
        reference,
        round_settings(t, index),
        adapter_on_base=t.method == "lora" and init == base,
    )


def plan_control(t, index: int, parent: Policy, base: Path) -> TrainingPlan:
    """Round `index`'s control (evaluation.control): the round's plan (steps, seeds, learning
    rate, method, init; with LoRA one adapter continued on the base, as the rounds do) from the
    control's own parent, trained with SFT. An objective that does not train on the training set
    (pairs, rollouts) gets SFT with the same steps and learning rate, not the same loss."""
    if data_table(t.objective) != "training_set":
        t = t.model_copy(update={"objective": SFT, "trl": _sft_fields(t.trl)})
    return plan_round(t, index, parent, base)


def _sft_fields(fields: dict) -> dict:
    """The training.trl fields an SFT trainer takes too (a DPO or GRPO config's own are dropped)."""
    import dataclasses

    import trl

    caps = OBJECTIVES.get(SFT).caps
    known = {f.name for f in dataclasses.fields(getattr(trl, caps.trl_config))} - set(dict(caps.own_fields))
    return {k: v for k, v in fields.items() if k in known}


def data_table(objective: str) -> str:
    """The round table an objective trains on (its hash is the policy's `data_hash`)."""
    return OBJECTIVES.get(objective).caps.trains_on


def round_settings(t, index: int) -> SFTSettings | DPOSettings | GRPOSettings:
    """Round `index`'s trainer settings from a `selftaught.config.TrainingConfig`."""
    return OBJECTIVES.get(t.objective).obj.settings(t, index)


def _adapter_on_base(artifact: Path, base: Path) -> bool:
    prov = read_provenance(artifact)
    return adapter_path(artifact).is_dir() and prov.get("adapter_base_hash") == read_provenance(base)["weights_hash"]


def run_plan(
    plan: TrainingPlan,
    rows: pl.DataFrame,
    work: Path,
    launcher,
    log=print,
    reward=None,
    tracking: Tracking | None = None,
) -> dict:
    """Train `plan` on `rows` into `work`; `launcher`: a `LauncherConfig`; `tracking`: the
    round's experiment trackers. Returns the metrics. GRPO: `rows` are prompts and `reward`
    the reward function (filters.rewards.VerifierReward)."""
    objective = OBJECTIVES.get(plan.objective)
    reference = model_path(plan.reference.artifact) if plan.reference else None
    if launcher.launched() and objective.caps.launchable:  # the config refuses a launcher otherwise
        return launch(
            plan.objective,
            model_path(plan.init),
            rows,
            work,
            plan.settings,
            processes=launcher.processes,
            config_file=launcher.accelerate_config,
            extra=launcher.extra_args,
            reference=reference,
            adapter_init=plan.adapter_init,
            log=log,
            tracking=tracking,
        )
    return objective.obj.train(
        model_path(plan.init),
        rows,
        work,
        plan.settings,
        reference=reference,
        adapter_init=plan.adapter_init,
        tracking=tracking,
        reward=reward,
    )


def train_verifier(t, index: int, pairs: pl.DataFrame, base: Path, work: Path) -> dict:
    """V-STaR: DPO from the base model on (correct, incorrect) `pairs` of every round so far;
    the base is also the reference, so the score is the verifier's implicit reward."""
    if pairs.height == 0:
        raise ValueError("the V-STaR verifier has no (correct, incorrect) pair in any round yet")
    m = train_dpo(model_path(base), model_path(base), pairs, verifier_dir(work), verifier_settings(t, index))
    return {
        "pairs": pairs.height,
        "reference": "base",
        "steps": m["steps"],
        "reward_accuracy": m["reward_accuracy"],
        "reward_margin": m["reward_margin"],
    }
