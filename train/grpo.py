"""Online RL with TRL's GRPOTrainer (training.objective grpo): the trainer samples
`num_generations` completions per prompt, a reward function (filters.rewards) scores them,
and the group-relative advantage trains the policy. GRPO, Dr. GRPO, DAPO, BNPO, ... are
`loss_type`s of the one trainer.

Writes `out_dir/model` (and `out_dir/adapter` for LoRA) like SFT and DPO. Checkpoints go to
`out_dir/checkpoints`; a rerun resumes from the newest and tells the reward function to drop
the rollouts it will generate again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from selftaught.plugins import OBJECTIVES
from selftaught.seeds import mixed_seed
from train.common import (
    LoraSettings,
    finite_loss_callback,
    last_complete_checkpoint,
    load_for_training,
    lora_settings,
    lora_setup,
    progress_callback,
    train_and_save,
    trl_config,
)
from train.settings import (
    CHECKPOINT_FIELDS,
    from_config,
    owned_fields,
    seed_for_round,
    setting,
    sorted_items,
    steps_for_round,
)
from train.tracking import Tracking

log = logging.getLogger("selftaught.train")


def _batch(prompts_per_step: int, s) -> int:
    return s.num_generations * prompts_per_step  # one group per prompt, every group in one batch


@dataclass(frozen=True)
class GRPOSettings:
    """One GRPO round: each field is the training config key it names (default: the key's)."""

    # ---- optimization
    max_steps: int = setting("max_steps", "max_steps", per_round=steps_for_round)
    learning_rate: float = setting("learning_rate", "learning_rate")
    warmup_steps: int = setting("warmup_steps", "warmup_steps")
    seed: int = setting("seed", ("seed", "data_seed"), per_round=seed_for_round)
    save_every: int = setting("save_every", CHECKPOINT_FIELDS)
    # ---- rollouts
    num_generations: int = setting("grpo.num_generations", "num_generations")
    prompts_per_step: int = setting("grpo.prompts_per_step", {"per_device_train_batch_size": _batch})
    max_completion_length: int = setting("grpo.max_completion_length", "max_completion_length")
    temperature: float = setting("grpo.temperature", "temperature")
    top_p: float = setting("grpo.top_p", "top_p")
    use_vllm: bool = setting("grpo.use_vllm", "use_vllm")
    vllm_mode: str = setting("grpo.vllm_mode", "vllm_mode")
    # ---- objective
    loss_type: str = setting("grpo.loss_type", "loss_type")  # grpo | dr_grpo | dapo | ... (the installed TRL's)
    beta: float = setting("grpo.beta", "beta")  # KL to the initial policy; 0 loads no reference model
    epsilon: float = setting("grpo.epsilon", "epsilon")
    epsilon_high: float | None = setting("grpo.epsilon_high", "epsilon_high")
    scale_rewards: str = setting("grpo.scale_rewards", "scale_rewards")
    # ---- model and precision
    method: str = setting("method")
    lora: LoraSettings = setting("lora", convert=lora_settings)
    bf16: bool | None = setting("bf16")
    dtype: str = setting("dtype")
    trl: tuple[tuple[str, object], ...] = setting("trl", convert=sorted_items)  # more GRPOConfig fields


def grpo_config(s: GRPOSettings, output_dir: str, tracking: Tracking | None = None):
    """TRL's GRPOConfig for `s`; a `trl` field the installed TRL does not have, or one
    selftaught sets itself, is a ValueError naming it."""
    return trl_config("grpo", s, {"output_dir": output_dir}, {"logging_steps": 1}, tracking)


def train_grpo(
    init_model_dir: str | Path,
    prompts: pl.DataFrame,
    reward,
    out_dir: str | Path,
    s: GRPOSettings,
    adapter_init: str | Path | None = None,
    callbacks: tuple = (),
    tracking: Tracking | None = None,
) -> dict:
    """GRPO on `prompts` (prompt_id, prompt, and reference unless the reward is label-free)
    with `reward` (a filters.rewards.VerifierReward, or any TRL reward function with a
    `forget_from(step)` method). Returns training metrics."""
    from datasets import Dataset
    from trl import GRPOTrainer

    if prompts.height == 0:
        raise ValueError("no prompts: nothing to roll out")
    if s.method not in ("full", "lora"):
        raise ValueError(f"training method must be 'full' or 'lora', got {s.method!r}")
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    args = grpo_config(s, str(ckpt_dir), tracking)
    tok, model = load_for_training(init_model_dir, s.seed, s.dtype)
    model, peft_config = lora_setup(model, s.method, s.lora, adapter_init)
    data = Dataset.from_dict({c: prompts[c].to_list() for c in prompts.columns})
    trainer = _resumable_trainer(GRPOTrainer)(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=data,
        processing_class=tok,
        peft_config=peft_config,
        callbacks=[
            _step_seed_callback(s.seed),
            progress_callback(s.max_steps, "GRPO"),
            finite_loss_callback("GRPO"),
            *callbacks,
        ],
    )
    resume = last_complete_checkpoint(ckpt_dir) if s.save_every > 0 else None
    from_step = int(resume.name.rsplit("-", 1)[-1]) if resume else 0
    dropped = reward.forget_from(from_step)  # rollouts after the checkpoint are generated again
    if resume:
        log.info("resuming GRPO from %s (%d rollout shards after it dropped)", resume, dropped)
    metrics = train_and_save(trainer, tok, out, s.method, "GRPO", resume, tracking)
    history = trainer.state.log_history
    rewards = [h["reward"] for h in history if "reward" in h]
    lengths = [h["completions/mean_length"] for h in history if "completions/mean_length" in h]
    per_step = s.num_generations * s.prompts_per_step
    return {
        **metrics,
        "rows": prompts.height,
        "first_reward": float(rewards[0]) if rewards else float("nan"),
        "final_reward": float(rewards[-1]) if rewards else float("nan"),
        "mean_completion_length": float(sum(lengths) / len(lengths)) if lengths else float("nan"),
        "generated_tokens": int(round(sum(lengths) * per_step)),  # TRL logs each step's mean length
        # TRL's own view of each logged step's rollouts: mean reward and the share of groups whose
        # rewards were all equal (zero advantage); "step" is the optimizer step that logged them.
        "per_step": [
            {"step": h["step"], "reward": h["reward"], "frac_reward_zero_std": h["frac_reward_zero_std"]}
            for h in history
            if "reward" in h and "frac_reward_zero_std" in h
        ],
    }


def _step_seed_callback(seed: int):
    """Reseed python, numpy and torch at each optimizer step from (seed, step), before the
    step generates: a step's rollouts are a function of the seed, the step, the weights and its
    prompts, never of what earlier steps drew. A run resumed from a checkpoint then samples
    exactly what the uninterrupted run sampled (the RNG state Trainer restores is only correct
    for the first step after the checkpoint)."""
    from accelerate.utils import set_seed
    from transformers import TrainerCallback

    class StepSeed(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            set_seed(mixed_seed(seed, state.global_step), device_specific=True)  # ranks still differ

    return StepSeed()


def _resumable_trainer(trainer_class):
    """`trainer_class` with a prompt order per epoch that is a function of (seed, epoch). TRL's
    RepeatSampler draws each epoch's permutation from one generator seeded once and not
    checkpointed: a run resumed in epoch 2 replayed epoch 0's order, so its groups differed."""

    class Resumable(trainer_class):
        def _get_train_sampler(self, dataset=None):
            sampler = super()._get_train_sampler(dataset)
            if getattr(sampler, "shuffle", False) and getattr(sampler, "generator", None) is not None:
                base = sampler.seed or 0
                sampler.set_epoch = lambda epoch: sampler.generator.manual_seed(mixed_seed(base, epoch))
            return sampler

    Resumable.__name__ = trainer_class.__name__
    return Resumable


# GRPO keeps one generation batch per optimizer step (a rollout's `step` is the policy version
# that generated it; resume drops the rollouts from the checkpoint's step on), so the fields
# that would change that are selftaught's too.
@OBJECTIVES.register(
    "grpo",
    trains_on="rollouts",
    online=True,
    launchable=False,
    trl_config="GRPOConfig",
    label="GRPO",
    own_fields=owned_fields(
        GRPOSettings,
        per_device_train_batch_size="training.grpo.prompts_per_step x num_generations",
        **{
            f: "one generation batch per optimizer step (rollouts are versioned by step)"
            for f in ("steps_per_generation", "generation_batch_size", "gradient_accumulation_steps", "num_iterations")
        },
    ),
)
class GRPOObjective:
    """objective grpo: online RL on the round's prompts; the verifier rewards the rollouts."""

    settings_class = GRPOSettings

    @staticmethod
    def settings(t, index: int) -> GRPOSettings:
        return from_config(GRPOSettings, t, index)

    @staticmethod
    def train(
        init, rows: pl.DataFrame, out, s: GRPOSettings, *, reference=None, adapter_init=None, tracking=None, reward=None
    ) -> dict:
        return train_grpo(init, rows, reward, out, s, adapter_init=adapter_init, tracking=tracking)

    @staticmethod
    def describe(s: GRPOSettings, start: str, rows: int, reference=None) -> str:
        return (
            f"GRPO ({s.loss_type}, {s.method}) from {start} on {rows} prompts, {s.max_steps} steps of "
            f"{s.prompts_per_step} prompts x {s.num_generations} rollouts"
        )
