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
from train.sft import (
    ANY_OBJECTIVE_FIELDS,
    LoraSettings,
    _finite_loss_callback,
    _progress_callback,
    check_finite_weights,
    lora_settings,
    lora_setup,
    save_trained,
    torch_dtype,
    trl_config,
)
from train.tracking import Tracking, training_runs

log = logging.getLogger("selftaught.train")


@dataclass(frozen=True)
class DPOSettings:
    max_steps: int = 50
    learning_rate: float = 1e-4
    batch_size: int = 8
    beta: float = 0.1
    rpo_alpha: float = 1.0  # weight of the NLL term on chosen answers; 0 = plain DPO
    max_length: int = 256
    seed: int = 0
    method: str = "full"  # or "lora": the adapter trains, the reference stays the model given
    bf16: bool | None = None  # mixed precision, as in SFTSettings
    dtype: str = "auto"  # the weights (policy and reference) while training, as in SFTSettings
    lora: LoraSettings = LoraSettings()
    trl: tuple[tuple[str, object], ...] = ()  # more DPOConfig fields, passed through (training.trl)


def settings_from_config(t, index: int) -> DPOSettings:
    """Round `index`'s DPOSettings from a `selftaught.config.TrainingConfig` (its `dpo` section)."""
    d = t.dpo
    return DPOSettings(
        max_steps=t.steps_for(index),
        learning_rate=t.learning_rate,
        batch_size=t.batch_size,
        beta=d.beta,
        rpo_alpha=d.rpo_alpha,
        max_length=t.max_length,
        seed=t.seed + index,
        method=t.method,
        lora=lora_settings(t.lora),
        bf16=t.bf16,
        dtype=t.dtype,
        trl=tuple(sorted(t.trl.items())),
    )


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
        seed=t.seed + index,
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
    losses, weights = (["sigmoid", "sft"], [1.0, s.rpo_alpha]) if s.rpo_alpha > 0 else (["sigmoid"], None)
    args = trl_config(
        "dpo",
        {
            "output_dir": str(out / "checkpoints"),
            "max_steps": s.max_steps,
            "per_device_train_batch_size": s.batch_size,
            "learning_rate": s.learning_rate,
            "beta": s.beta,
            "loss_type": losses,
            "loss_weights": weights,
            "max_length": s.max_length,
            "seed": s.seed,
            "data_seed": s.seed,
            "save_strategy": "no",
            **(tracking.training_args() if tracking else {}),
        },
        {},
        s.trl,
        s.bf16,
    )
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
            _progress_callback(s.max_steps, "preference training"),
            _finite_loss_callback("preference training"),
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
    own_fields=tuple(
        {
            **ANY_OBJECTIVE_FIELDS,
            "per_device_train_batch_size": "training.batch_size",
            "max_length": "training.max_length",
            "beta": "training.dpo.beta",
            "loss_type": "training.dpo.rpo_alpha",
            "loss_weights": "training.dpo.rpo_alpha",
        }.items()
    ),
)
class DPOObjective:
    """objective dpo: DPO (RPO with training.dpo.rpo_alpha > 0) on the round's preference pairs."""

    settings_class = DPOSettings

    @staticmethod
    def settings(t, index: int) -> DPOSettings:
        return settings_from_config(t, index)

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
