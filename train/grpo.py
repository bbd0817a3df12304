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
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from selftaught.plugins import OBJECTIVES
from train.sft import (
    ANY_OBJECTIVE_FIELDS,
    LoraSettings,
    _finite_loss_callback,
    _last_complete_checkpoint,
    _progress_callback,
    load_for_training,
    lora_settings,
    lora_setup,
    train_and_save,
    trl_config,
)
from train.tracking import Tracking

log = logging.getLogger("selftaught.train")


@dataclass(frozen=True)
class GRPOSettings:
    # ---- optimization
    max_steps: int = 20
    learning_rate: float = 1e-5
    warmup_steps: int = 0
    seed: int = 0
    save_every: int = 0  # checkpoint interval in steps for resume; 0 = no checkpoints
    bf16: bool | None = None
    dtype: str = "auto"  # the weights while training, as in SFTSettings
    method: str = "full"  # full | lora
    lora: LoraSettings = field(default_factory=LoraSettings)
    # ---- rollouts
    num_generations: int = 4  # completions per prompt: one group
    prompts_per_step: int = 4  # groups per optimizer step
    max_completion_length: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # or "server" (trl vllm-serve)
    # ---- objective
    loss_type: str = "dapo"  # grpo | dr_grpo | dapo | bnpo | ... (the installed TRL's)
    beta: float = 0.0  # KL to the initial policy; 0 loads no reference model
    epsilon: float = 0.2
    epsilon_high: float | None = None
    scale_rewards: str = "group"  # group | batch | none (Dr. GRPO: none)
    trl: tuple[tuple[str, object], ...] = ()  # more GRPOConfig fields, passed through (training.trl)


def settings_from_config(t, index: int) -> GRPOSettings:
    """Round `index`'s GRPOSettings from a `selftaught.config.TrainingConfig` (its `grpo` section)."""
    g = t.grpo_settings()
    return GRPOSettings(
        max_steps=t.steps_for(index),
        learning_rate=t.learning_rate,
        warmup_steps=t.warmup_steps,
        seed=t.seed + index,
        save_every=t.save_every,
        bf16=t.bf16,
        dtype=t.dtype,
        method=t.method,
        lora=lora_settings(t.lora),
        num_generations=g.num_generations,
        prompts_per_step=g.prompts_per_step,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        use_vllm=g.use_vllm,
        vllm_mode=g.vllm_mode,
        loss_type=g.loss_type,
        beta=g.beta,
        epsilon=g.epsilon,
        epsilon_high=g.epsilon_high,
        scale_rewards=g.scale_rewards,
        trl=tuple(sorted(t.trl.items())),
    )


def grpo_config(s: GRPOSettings, output_dir: str, tracking: Tracking | None = None):
    """TRL's GRPOConfig for `s`; a `trl` field the installed TRL does not have, or one
    selftaught sets itself, is a ValueError naming it."""
    return trl_config(
        "grpo",
        {
            "output_dir": output_dir,
            "max_steps": s.max_steps,
            "learning_rate": s.learning_rate,
            "warmup_steps": s.warmup_steps,
            "seed": s.seed,
            "data_seed": s.seed,
            "per_device_train_batch_size": s.num_generations * s.prompts_per_step,
            "num_generations": s.num_generations,
            "max_completion_length": s.max_completion_length,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "loss_type": s.loss_type,
            "beta": s.beta,
            "epsilon": s.epsilon,
            "epsilon_high": s.epsilon_high,
            "scale_rewards": s.scale_rewards,
            "use_vllm": s.use_vllm,
            "vllm_mode": s.vllm_mode,
            "save_strategy": "steps" if s.save_every else "no",
            "save_steps": s.save_every or 500,
            "save_total_limit": 1,
            **(tracking.training_args() if tracking else {}),
        },
        {"logging_steps": 1},
        s.trl,
        s.bf16,
    )


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
            _progress_callback(s.max_steps, "GRPO"),
            _finite_loss_callback("GRPO"),
            *callbacks,
        ],
    )
    resume = _last_complete_checkpoint(ckpt_dir) if s.save_every > 0 else None
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


def _mixed_seed(*parts: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0]) % 2**31


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
            set_seed(_mixed_seed(seed, state.global_step), device_specific=True)  # ranks still differ

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
                sampler.set_epoch = lambda epoch: sampler.generator.manual_seed(_mixed_seed(base, epoch))
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
    own_fields=tuple(
        {
            **ANY_OBJECTIVE_FIELDS,
            "warmup_steps": "training.warmup_steps",
            **{
                f: f"training.grpo.{f}"
                for f in (
                    "num_generations",
                    "beta",
                    "loss_type",
                    "epsilon",
                    "epsilon_high",
                    "scale_rewards",
                    "max_completion_length",
                    "temperature",
                    "top_p",
                    "use_vllm",
                    "vllm_mode",
                )
            },
            "per_device_train_batch_size": "training.grpo.prompts_per_step x num_generations",
            **{
                f: "one generation batch per optimizer step (rollouts are versioned by step)"
                for f in (
                    "steps_per_generation",
                    "generation_batch_size",
                    "gradient_accumulation_steps",
                    "num_iterations",
                )
            },
        }.items()
    ),
)
class GRPOObjective:
    """objective grpo: online RL on the round's prompts; the verifier rewards the rollouts."""

    settings_class = GRPOSettings

    @staticmethod
    def settings(t, index: int) -> GRPOSettings:
        return settings_from_config(t, index)

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
