"""Preference training with TRL's DPOTrainer: DPO, or RPO (DPO + NLL on the chosen
answer, Pang et al. 2024) when `rpo_alpha` > 0, against a fixed reference model."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from selftaught.plugins import OBJECTIVES
from selftaught.seeds import training_seed
from train.common import (
    LoraSettings,
    check_finite_weights,
    finite_loss_callback,
    lora_settings,
    lora_setup,
    progress_callback,
    save_trained,
    torch_dtype,
    trl_config,
)
from train.settings import from_config, owned_fields, seed_for_round, setting, sorted_items, steps_for_round
from train.tracking import Tracking, training_runs

log = logging.getLogger("selftaught.train")
NO_CHECKPOINTS = {"save_strategy": "no"}  # a DPO round is short; a rerun trains again


def _rpo_losses(rpo_alpha: float, s) -> list[str]:
    return ["sigmoid", "sft"] if rpo_alpha > 0 else ["sigmoid"]


def _rpo_weights(rpo_alpha: float, s) -> list[float] | None:
    return [1.0, rpo_alpha] if rpo_alpha > 0 else None


@dataclass(frozen=True)
class DPOSettings:
    """One preference fine-tune: each field is the training config key it names (default: the key's)."""

    # ---- optimization
    max_steps: int = setting("max_steps", "max_steps", per_round=steps_for_round)
    learning_rate: float = setting("learning_rate", "learning_rate")
    batch_size: int = setting("batch_size", "per_device_train_batch_size")
    seed: int = setting("seed", ("seed", "data_seed"), per_round=seed_for_round)
    # ---- objective
    beta: float = setting("dpo.beta", "beta")
    rpo_alpha: float = setting("dpo.rpo_alpha", {"loss_type": _rpo_losses, "loss_weights": _rpo_weights})
    max_length: int = setting("max_length", "max_length")
    # ---- model and precision: with lora the adapter trains, the reference stays the model given
    method: str = setting("method")
    lora: LoraSettings = setting("lora", convert=lora_settings)
    bf16: bool | None = setting("bf16")
    dtype: str = setting("dtype")  # the policy's and the reference's
    trl: tuple[tuple[str, object], ...] = setting("trl", convert=sorted_items)  # more DPOConfig fields


def verifier_settings(t, index: int) -> DPOSettings:
    """V-STaR's verifier (full DPO from the base) in round `index`, from `TrainingConfig.verifier`."""
    v = t.verifier
    return DPOSettings(
        max_steps=v.max_steps,
        learning_rate=v.learning_rate,
        batch_size=v.batch_size,
        beta=v.beta,
        rpo_alpha=0.0,
        max_length=t.max_length,
        seed=training_seed(t.seed, index),
        bf16=t.bf16,
        dtype=t.dtype,
    )


def train_dpo(
    init_model_dir: str | Path,
    ref_model_dir: str | Path,
    pairs: pl.DataFrame,
    out_dir: str | Path,
    s: DPOSettings,
    adapter_init: str | Path | None = None,
    tracking: Tracking | None = None,
) -> dict:
    """Train the model in `init_model_dir` on (prompt, chosen, rejected) pairs; the
    reference is `ref_model_dir` (always an explicit model, also for LoRA, so "previous
    round" and "base" mean the same in both methods). Writes `out_dir/model` (and
    `out_dir/adapter` for LoRA; `adapter_init` continues an adapter) and returns metrics;
    `tracking` logs the run to experiment trackers."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import DPOTrainer

    if pairs.height == 0:
        raise ValueError("no preference pairs: every prompt's samples were all correct or all wrong")
    out = Path(out_dir)
    args = trl_config("dpo", s, {"output_dir": str(out / "checkpoints"), **NO_CHECKPOINTS}, {}, tracking)
    try:
        tok = AutoTokenizer.from_pretrained(init_model_dir, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(init_model_dir, dtype=torch_dtype(s.dtype))
        ref = AutoModelForCausalLM.from_pretrained(ref_model_dir, dtype=torch_dtype(s.dtype))
    except (OSError, ValueError) as exc:
        raise ValueError(f"preference training: cannot load a model: {str(exc).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    torch.manual_seed(s.seed)
    model, peft_config = lora_setup(model, s.method, s.lora, adapter_init)
    data = Dataset.from_dict({c: pairs[c].to_list() for c in ("prompt", "chosen", "rejected")})
    trainer = DPOTrainer(
        model=model,
        ref_model=ref,
        args=args,
        train_dataset=data,
        processing_class=tok,
        peft_config=peft_config,
        callbacks=[
            progress_callback(s.max_steps, "preference training"),
            finite_loss_callback("preference training"),
        ],
    )
    trainer.remove_callback(PrinterCallback)
    t0 = time.monotonic()
    with training_runs(tracking, trainer) as runs:
        result = trainer.train()
    check_finite_weights(trainer.model, "preference training")
    seconds = time.monotonic() - t0
    if trainer.is_world_process_zero():  # several processes (accelerate launch): one writer
        save_trained(trainer.model, tok, out, s.method)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    history = [h for h in trainer.state.log_history if "loss" in h]
    last = history[-1] if history else {}
    return {
        "train_loss": float(result.training_loss),
        "final_loss": float(last.get("loss", float("nan"))),
        "steps": int(trainer.state.global_step),
        "pairs": pairs.height,
        "seconds": round(seconds, 1),
        "reward_margin": float(last.get("rewards/margins", float("nan"))),
        "reward_accuracy": float(last.get("rewards/accuracies", float("nan"))),
        "processes": int(trainer.args.world_size),
        **({"tracker_runs": runs} if runs else {}),
    }


@OBJECTIVES.register(
    "dpo",
    trains_on="pairs",
    reference_model=True,
    trl_config="DPOConfig",
    label="fine-tune",
    own_fields=owned_fields(DPOSettings, save_strategy="a DPO round keeps no checkpoints"),
)
class DPOObjective:
    """objective dpo: DPO (RPO with training.dpo.rpo_alpha > 0) on the round's preference pairs."""

    settings_class = DPOSettings

    @staticmethod
    def settings(t, index: int) -> DPOSettings:
        return from_config(DPOSettings, t, index)

    @staticmethod
    def train(
        init, rows: pl.DataFrame, out, s: DPOSettings, *, reference=None, adapter_init=None, tracking=None, reward=None
    ) -> dict:
        return train_dpo(init, reference, rows, out, s, adapter_init=adapter_init, tracking=tracking)

    @staticmethod
    def describe(s: DPOSettings, start: str, rows: int, reference=None) -> str:
        return (
            f"{'RPO' if s.rpo_alpha else 'DPO'} from {start} on {rows} pairs, reference "
            f"{reference.policy_id if reference else '-'}, {s.max_steps} steps"
        )
