"""What every trainer shares: loading the model, LoRA, the TRL config, callbacks (progress,
divergence), checkpoints, saving, and the metrics every objective reports.

train/sft.py, train/dpo.py and train/grpo.py register the objectives on top of it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from selftaught.hardware import bf16_support
from selftaught.plugins import OBJECTIVES
from train.settings import setting, trl_fields
from train.tracking import Tracking, training_runs

log = logging.getLogger("selftaught.train")


@dataclass(frozen=True)
class LoraSettings:
    """The adapter of method lora (training.lora; defaults: the config's)."""

    r: int = setting("lora.r")
    alpha: int = setting("lora.alpha")
    dropout: float = setting("lora.dropout")
    target_modules: tuple[str, ...] = setting("lora.target_modules", convert=tuple)


def progress_callback(total: int, what: str = "train"):
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


def finite_loss_callback(what: str):
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


def device_args(bf16: bool | None = None) -> dict:
    """TRL's device fields; `bf16` None: bfloat16 mixed precision where it is fast here
    (selftaught.hardware: a GPU that supports it, a CPU with AMX / AVX-512 BF16)."""
    import torch

    bf16 = bf16_support()[0] if bf16 is None else bf16
    if torch.cuda.is_available():
        return {"bf16": bf16}
    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1  # launched by accelerate / torchrun
    return {"use_cpu": True, "bf16": bf16, **({"ddp_backend": "gloo"} if multi else {})}


def training_precision(bf16: bool | None) -> dict:
    """What a training run's `training.bf16` becomes here, and why (for provenance)."""
    has, why = bf16_support()
    used = has if bf16 is None else bf16
    reason = why if bf16 is None else f"training.bf16: {str(bf16).lower()}"
    return {"training_precision": "bf16 mixed" if used else "fp32", "training_precision_reason": reason}


# Batches are padded to a multiple of this many tokens. On a CPU, oneDNN keeps a compiled
# kernel (and its buffers) per matmul shape, for the life of the process: with every batch
# padded to its own longest row, each new length added to the cache, so resident memory grew
# through training and from round to round (bench/training_memory.py, three rounds in one
# process: round 3's peak +3.3% over round 1's unpadded, -0.9% padded to 16, 9.5% lower).
# training.trl.pad_to_multiple_of overrides it.
PAD_TO_MULTIPLE_OF = 16


def trl_config(objective: str, settings, fixed: dict, defaults: dict, tracking: Tracking | None = None):
    """The installed TRL's config for `objective`: selftaught's `defaults`, then the user's
    pass-through fields (`settings.trl`, training.trl), then what selftaught sets itself: the
    fields `settings` declares (train.settings), the `fixed` ones (output_dir), the trackers'
    and the device's."""
    import warnings

    import trl

    from selftaught.config.training import check_trl_passthrough

    ours = {**fixed, **trl_fields(settings), **(tracking.training_args() if tracking else {})}
    extra = dict(settings.trl)
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
        return cls(**{**defaults, **extra, **ours, **device_args(settings.bf16)})


def torch_dtype(name: str):
    """training.dtype as a torch dtype; auto: bfloat16 on a GPU that supports it, else float32."""
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


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


def last_complete_checkpoint(ckpt_dir: Path) -> Path | None:
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
