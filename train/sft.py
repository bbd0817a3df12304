"""Supervised fine-tuning on prompt/completion rows with TRL's SFTTrainer.

Prompt/completion rows give completion-only loss and an appended eos. `method`
is "full" (all weights; needed for tiny models from scratch) or "lora" (PEFT
adapter, merged into a full copy so the next round and any backend can load it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from selftaught.plugins import OBJECTIVES
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


@dataclass(frozen=True)
class SFTSettings:
    """One fine-tune: each field is the training config key it names (default: the key's)."""

    # ---- optimization
    max_steps: int = setting("max_steps", "max_steps", per_round=steps_for_round)
    learning_rate: float = setting("learning_rate", "learning_rate")
    batch_size: int = setting("batch_size", "per_device_train_batch_size")
    warmup_steps: int = setting("warmup_steps", "warmup_steps")
    weight_decay: float = setting("weight_decay", "weight_decay")
    seed: int = setting("seed", ("seed", "data_seed"), per_round=seed_for_round)
    save_every: int = setting("save_every", CHECKPOINT_FIELDS)
    # ---- data
    max_length: int = setting("max_length", "max_length")
    completion_only_loss: bool = setting("completion_only_loss", "completion_only_loss")
    # ---- model and precision
    method: str = setting("method")
    lora: LoraSettings = setting("lora", convert=lora_settings)
    bf16: bool | None = setting("bf16")  # through train.common.device_args
    dtype: str = setting("dtype")
    trl: tuple[tuple[str, object], ...] = setting("trl", convert=sorted_items)  # more SFTConfig fields


def train_sft(
    init_model_dir: str | Path,
    rows: pl.DataFrame,
    out_dir: str | Path,
    s: SFTSettings,
    callbacks: tuple = (),
    adapter_init: str | Path | None = None,
    tracking: Tracking | None = None,
) -> dict:
    """Fine-tune the model in `init_model_dir` on `rows` (prompt, completion).

    Writes `out_dir/model` (loadable HF model + tokenizer), and for LoRA also
    `out_dir/adapter`; `adapter_init` continues that LoRA adapter on `init_model_dir`
    instead of starting a fresh one; `tracking` logs the run to experiment trackers.
    Checkpoints go to `out_dir/checkpoints` and a rerun resumes from the newest one. Returns
    training metrics.
    """
    from datasets import Dataset
    from trl import SFTTrainer

    if rows.height == 0:
        raise ValueError("no training rows: nothing to fine-tune on")
    if s.method not in ("full", "lora"):
        raise ValueError(f"training method must be 'full' or 'lora', got {s.method!r}")
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    args = trl_config("sft", s, {"output_dir": str(ckpt_dir)}, {"lr_scheduler_type": "linear"}, tracking)
    tok, model = load_for_training(init_model_dir, s.seed, s.dtype)
    model, peft_config = lora_setup(model, s.method, s.lora, adapter_init)
    data = Dataset.from_dict({"prompt": rows["prompt"].to_list(), "completion": rows["completion"].to_list()})
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tok,
        peft_config=peft_config,
        callbacks=[progress_callback(s.max_steps, "fine-tuning"), finite_loss_callback("fine-tuning"), *callbacks],
    )
    resume = last_complete_checkpoint(ckpt_dir) if s.save_every > 0 else None
    if resume:
        log.info("resuming training from %s", resume)
    return {**train_and_save(trainer, tok, out, s.method, "fine-tuning", resume, tracking), "rows": rows.height}


def warm_start_settings(t) -> SFTSettings:
    """model.warm_start's fine-tune (a TrainingConfig): round 0's seed, its max_steps as given."""
    return from_config(SFTSettings, t, 0, max_steps=t.max_steps)


SFT = "sft"  # the objective's registered name (a control trains with it: train.plan.plan_control)


@OBJECTIVES.register(
    SFT,
    trains_on="training_set",
    trl_config="SFTConfig",
    label="fine-tune",
    own_fields=owned_fields(SFTSettings),
)
class SFTObjective:
    """objective sft: supervised fine-tuning on the round's training set (prompt, completion)."""

    settings_class = SFTSettings

    @staticmethod
    def settings(t, index: int) -> SFTSettings:
        return from_config(SFTSettings, t, index)

    @staticmethod
    def train(
        init, rows: pl.DataFrame, out, s: SFTSettings, *, reference=None, adapter_init=None, tracking=None, reward=None
    ) -> dict:
        return train_sft(init, rows, out, s, adapter_init=adapter_init, tracking=tracking)

    @staticmethod
    def describe(s: SFTSettings, start: str, rows: int, reference=None) -> str:
        return f"{s.method} fine-tune from {start} on {rows} rows, {s.max_steps} steps"
