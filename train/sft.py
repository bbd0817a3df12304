"""Supervised fine-tuning on prompt/completion rows with TRL's SFTTrainer.

Prompt/completion rows give completion-only loss and an appended eos. `method`
is "full" (all weights; needed for tiny models from scratch) or "lora" (PEFT
adapter, merged into a full copy so the next round and any backend can load it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from selftaught.plugins import OBJECTIVES
from train.tracking import Tracking, training_runs

log = logging.getLogger("selftaught.train")

# The TRL config fields selftaught sets itself whatever the objective, and the key that sets
# them; each objective adds its own (its registration's own_fields). training.trl may name any
# other field of the objective's TRL config class.
ANY_OBJECTIVE_FIELDS = {
    "output_dir": "the round's work folder",
    "max_steps": "training.max_steps",
    "learning_rate": "training.learning_rate",
    "seed": "training.seed",
    "data_seed": "training.seed",
    "save_strategy": "training.save_every",
    "save_steps": "training.save_every",
    "save_total_limit": "training.save_every",
    "report_to": "operations.tracking.report_to",
    "run_name": "operations.tracking (<experiment>/<round>)",
    "project": "operations.tracking.trackio_project",
    "use_cpu": "the machine (a GPU when there is one)",
    "bf16": "training.bf16",
    "disable_tqdm": "selftaught's progress output",
}


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class SFTSettings:
    method: str = "full"  # full | lora
    max_steps: int = 500
    learning_rate: float = 3e-4
    batch_size: int = 16
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_length: int = 256
    seed: int = 0
    save_every: int = 0  # checkpoint interval in steps for resume; 0 = no checkpoints
    completion_only_loss: bool = True  # False also trains on the prompt tokens
    bf16: bool | None = None  # mixed precision; None: on a GPU that supports it, off on CPU
    dtype: str = "auto"  # the weights while training: auto = bfloat16 on a GPU that supports it, else float32
    lora: LoraSettings = field(default_factory=LoraSettings)
    trl: tuple[tuple[str, object], ...] = ()  # more SFTConfig fields, passed through (training.trl)


def _progress_callback(total: int, what: str = "train"):
    """Training progress: a selftaught.progress update per step (a terminal's bar) and a
    "train step k/N loss" line per logging step (the line train.launch forwards)."""
    from transformers import TrainerCallback

    from selftaught.progress import Progress

    class ProgressLines(TrainerCallback):
        def __init__(self):
            self.t0 = time.monotonic()
            self.bar = Progress(what, total, "steps", every=float("inf"))  # the lines come from on_log

        def on_step_end(self, args, state, control, **kw):
            self.bar(state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                rate = state.global_step / max(time.monotonic() - self.t0, 1e-9)
                self.bar(state.global_step, loss=float(logs["loss"]))
                log.info(
                    "train step %d/%d loss %.4f (%.1f steps/s)",
                    state.global_step,
                    total,
                    logs["loss"],
                    rate,
                    extra={"progress_line": True},
                )  # a terminal's bar shows it instead

    return ProgressLines()


class TrainingDiverged(RuntimeError):
    """The loss or the weights stopped being finite numbers: nothing is saved."""


def _finite_loss_callback(what: str):
    """Stops training at the first non-finite logged loss (a NaN run must not exit 0)."""
    import math

    from transformers import TrainerCallback

    class FiniteLoss(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            for key in ("loss", "grad_norm"):
                value = (logs or {}).get(key)
                if isinstance(value, (int, float)) and not math.isfinite(value):
                    raise TrainingDiverged(
                        f"{what} diverged: {key} is {value} at step {state.global_step} (learning_rate "
                        f"{args.learning_rate:g}); no weights were saved. Lower training.learning_rate, or check "
                        "the rows for empty completions"
                    )

    return FiniteLoss()


def check_finite_weights(model, what: str) -> None:
    """Raise TrainingDiverged if any trainable weight is NaN or infinite (before it is saved)."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and not torch.isfinite(p).all():
                raise TrainingDiverged(
                    f"{what} produced non-finite weights ({name}); no weights were saved. Lower training.learning_rate"
                )


def _device_args(bf16: bool | None = None) -> dict:
    import torch

    if torch.cuda.is_available():
        return {"bf16": torch.cuda.is_bf16_supported() if bf16 is None else bf16}
    # TRL defaults to bf16: slow on a CPU without bfloat16 matmuls (AMX), so off unless asked for.
    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1  # launched by accelerate / torchrun
    return {"use_cpu": True, "bf16": bool(bf16), **({"ddp_backend": "gloo"} if multi else {})}


# Batches are padded to a multiple of this many tokens. On a CPU, oneDNN keeps a compiled
# kernel (and its buffers) per matmul shape, for the life of the process: with every batch
# padded to its own longest row, each new length added to the cache, so resident memory grew
# through training and from round to round (bench/training_memory.py, three rounds in one
# process: round 3's peak +3.3% over round 1's unpadded, -0.9% padded to 16, 9.5% lower).
# training.trl.pad_to_multiple_of overrides it.
PAD_TO_MULTIPLE_OF = 16


def trl_config(objective: str, ours: dict, defaults: dict, passthrough, bf16: bool | None):
    """The installed TRL's config for `objective`: selftaught's `defaults`, then the user's
    `passthrough` fields (training.trl), then what selftaught sets itself (`ours`, the device)."""
    import warnings

    import trl

    from selftaught.config.training import check_trl_passthrough

    extra = dict(passthrough)
    check_trl_passthrough(objective, extra)
    defaults = {
        "activation_checkpointing": False,  # TRL defaults to on: slower, odd numerics on CPU
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "logging_steps": max(1, ours["max_steps"] // 10),
        **defaults,
    }
    if not OBJECTIVES.get(objective).caps.online:
        # The trained-token count in the Trainer's state, which checkpoints hold: TRL's own
        # count restarts at 0 on a resume (the ledger undercounted a resumed round). An online
        # objective's trainer counts in the state itself.
        defaults.setdefault("include_num_input_tokens_seen", "non_padding")
        defaults.setdefault("pad_to_multiple_of", PAD_TO_MULTIPLE_OF)
    if "gradient_checkpointing" in extra:  # the deprecated name of activation_checkpointing
        del defaults["activation_checkpointing"]
    cls = getattr(trl, OBJECTIVES.get(objective).caps.trl_config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TRL's own defaults use names transformers renamed
        return cls(**{**defaults, **extra, **ours, **_device_args(bf16)})


def torch_dtype(name: str):
    """training.dtype as a torch dtype; auto: bfloat16 on a GPU that supports it, else float32."""
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


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
    args = trl_config(
        "sft",
        {
            "output_dir": str(ckpt_dir),
            "max_steps": s.max_steps,
            "per_device_train_batch_size": s.batch_size,
            "learning_rate": s.learning_rate,
            "warmup_steps": s.warmup_steps,
            "weight_decay": s.weight_decay,
            "max_length": s.max_length,
            "completion_only_loss": s.completion_only_loss,
            "seed": s.seed,
            "data_seed": s.seed,
            "save_strategy": "steps" if s.save_every else "no",
            "save_steps": s.save_every or 500,
            "save_total_limit": 1,
            **(tracking.training_args() if tracking else {}),
        },
        {"lr_scheduler_type": "linear"},
        s.trl,
        s.bf16,
    )
    tok, model = load_for_training(init_model_dir, s.seed, s.dtype)
    model, peft_config = lora_setup(model, s.method, s.lora, adapter_init)
    data = Dataset.from_dict({"prompt": rows["prompt"].to_list(), "completion": rows["completion"].to_list()})
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tok,
        peft_config=peft_config,
        callbacks=[_progress_callback(s.max_steps, "fine-tuning"), _finite_loss_callback("fine-tuning"), *callbacks],
    )
    resume = _last_complete_checkpoint(ckpt_dir) if s.save_every > 0 else None
    if resume:
        log.info("resuming training from %s", resume)
    return {**train_and_save(trainer, tok, out, s.method, "fine-tuning", resume, tracking), "rows": rows.height}


def load_for_training(init_model_dir: str | Path, seed: int, dtype: str = "auto"):
    """(tokenizer, model in `dtype`) of `init_model_dir`, a pad token set and torch seeded; a
    ValueError that names a directory that is not a model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(init_model_dir, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(init_model_dir, dtype=torch_dtype(dtype))
    except (OSError, ValueError) as exc:  # transformers raises both for "not a model"
        raise ValueError(
            f"{init_model_dir} is not a loadable model directory or hub id: {str(exc).splitlines()[0]}"
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    torch.manual_seed(seed)
    return tok, model


def train_and_save(
    trainer, tok, out: Path, method: str, what: str, resume: Path | None, tracking: Tracking | None = None
) -> dict:
    """Train (from checkpoint `resume`), check the weights, save `out/model` (and the adapter)
    from rank 0 and drop the checkpoints; returns the metrics every objective reports, with
    the tracker runs' ids when `tracking` is on. Checkpoints also go when training diverged:
    a rerun must not resume from them."""
    import torch
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints raw dicts; progress goes to our logger
    ckpt_dir = Path(trainer.args.output_dir)
    t0 = time.monotonic()
    try:
        with training_runs(tracking, trainer) as runs:
            result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        check_finite_weights(trainer.model, what)
    except TrainingDiverged:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        raise
    seconds = time.monotonic() - t0
    if trainer.is_world_process_zero():  # several processes (accelerate launch): one writer
        save_trained(trainer.model, tok, out, method)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    tokens = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]  # TRL's, if no state count
    return {
        "train_loss": float(result.training_loss),
        "final_loss": float(losses[-1]) if losses else float("nan"),
        "steps": int(trainer.state.global_step),
        "seconds": round(seconds, 1),
        "steps_per_second": round(trainer.state.global_step / max(seconds, 1e-9), 2),
        "resumed": resume is not None,
        "threads": int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())),
        "processes": int(trainer.args.world_size),
        "trained_tokens": int(trainer.state.num_input_tokens_seen or (max(tokens) if tokens else 0)) or None,
        **({"tracker_runs": runs} if runs else {}),
    }


def lora_setup(model, method: str, lora: LoraSettings, adapter_init: str | Path | None):
    """(model, peft_config) for a trainer: a fresh LoRA config, the parent's adapter
    continued on the same base weights (`adapter_init`), or the model as is (full)."""
    if adapter_init is not None:
        if method != "lora":
            raise ValueError("adapter_init continues a LoRA adapter; it needs method 'lora'")
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(adapter_init), is_trainable=True), None
    if method == "lora":
        from peft import LoraConfig

        return model, LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            task_type="CAUSAL_LM",
        )
    return model, None


def save_trained(model, tok, out: Path, method: str) -> None:
    """`out/model` (merged weights, loadable anywhere) and for LoRA `out/adapter`."""
    if method == "lora":
        model.save_pretrained(out / "adapter")
        model = model.merge_and_unload()
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")


def _last_complete_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest checkpoint the Trainer finished writing; partial ones (a crash while
    saving) are removed. transformers writes trainer_state.json last."""
    steps = {p: p.name.rsplit("-", 1)[-1] for p in ckpt_dir.glob("checkpoint-*")}
    for path in sorted((p for p, n in steps.items() if n.isdigit()), key=lambda p: int(steps[p]), reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text())
            return path
        except (OSError, ValueError):
            log.warning("removing incomplete checkpoint %s (interrupted while saving)", path)
            shutil.rmtree(path, ignore_errors=True)
    return None


def lora_settings(lora) -> LoraSettings:
    """LoraSettings from a `selftaught.config.LoraConfig` (the config validates, this is what train/ runs)."""
    return LoraSettings(r=lora.r, alpha=lora.alpha, dropout=lora.dropout, target_modules=tuple(lora.target_modules))


def settings_from_config(cfg, seed_offset: int = 0, max_steps: int | None = None) -> SFTSettings:
    """SFTSettings from a `selftaught.config.TrainingConfig` (`max_steps` overrides its own)."""
    lora = lora_settings(cfg.lora)
    return SFTSettings(
        method=cfg.method,
        max_steps=max_steps or cfg.max_steps,
        learning_rate=cfg.learning_rate,
        batch_size=cfg.batch_size,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_length=cfg.max_length,
        seed=cfg.seed + seed_offset,
        save_every=cfg.save_every,
        lora=lora,
        completion_only_loss=cfg.completion_only_loss,
        bf16=cfg.bf16,
        dtype=cfg.dtype,
        trl=tuple(sorted(cfg.trl.items())),
    )


@OBJECTIVES.register(
    "sft",
    trains_on="training_set",
    trl_config="SFTConfig",
    label="fine-tune",
    own_fields=tuple(
        {
            **ANY_OBJECTIVE_FIELDS,
            "per_device_train_batch_size": "training.batch_size",
            "warmup_steps": "training.warmup_steps",
            "weight_decay": "training.weight_decay",
            "max_length": "training.max_length",
            "completion_only_loss": "training.completion_only_loss",
        }.items()
    ),
)
class SFTObjective:
    """objective sft: supervised fine-tuning on the round's training set (prompt, completion)."""

    settings_class = SFTSettings

    @staticmethod
    def settings(t, index: int) -> SFTSettings:
        return settings_from_config(t, seed_offset=index, max_steps=t.steps_for(index))

    @staticmethod
    def train(
        init, rows: pl.DataFrame, out, s: SFTSettings, *, reference=None, adapter_init=None, tracking=None, reward=None
    ) -> dict:
        return train_sft(init, rows, out, s, adapter_init=adapter_init, tracking=tracking)

    @staticmethod
    def describe(s: SFTSettings, start: str, rows: int, reference=None) -> str:
        return f"{s.method} fine-tune from {start} on {rows} rows, {s.max_steps} steps"
