"""What `training.trl` may pass to TRL: the pass-through's policy, in one place.

TRL's config classes check types, not sense: `max_grad_norm: .nan` trains without clipping,
`neftune_noise_alpha: 1e30` ruins the model, and `push_to_hub: true` uploads from inside a
training step. So a pass-through value must be finite (at any depth), a field that reaches
the network or runs code from it is refused (with what to use instead), a field that sets
resources or scales the update has bounds, and any other number a magnitude bound.
"""

from __future__ import annotations

import math
from typing import Any

from selftaught.config.limits import MAX_BATCH, MAX_STEPS

# Fields refused with the reason; a prefix ends with "*".
REFUSED = {
    "push_to_hub": "a training step would upload the round's weights; `selftaught export` writes a checked "
    "copy to share",
    "hub_*": "Hugging Face Hub upload settings; `selftaught export` writes a checked copy to share",
    "log_completions_hub_repo": "uploads completions to the Hub",
    "trackio_space_id": "uploads to a Hugging Face Space; operations.tracking keeps Trackio local",
    "trackio_bucket_id": "uploads to a Hugging Face bucket; operations.tracking keeps Trackio local",
    "trackio_static_space_id": "uploads to a Hugging Face Space; operations.tracking keeps Trackio local",
    "vllm_server_base_url": "a remote generation server; grpo.vllm_mode and the loopback default cover a local one",
    "vllm_server_host": "a remote generation server; grpo.vllm_mode and the loopback default cover a local one",
    "trust_remote_code": "runs Python shipped with the weights; selftaught loads models with the code it has",
    "resume_from_checkpoint": "selftaught resumes a round from its own checkpoints",
    "save_only_model": "a checkpoint without the optimizer and RNG state cannot resume to identical weights",
    "ignore_data_skip": "a resumed round would train on other batches than the uninterrupted one",
    "deepspeed": "a config file path; training.launcher.accelerate_config takes it",
    "fsdp_config": "a config file path; training.launcher.accelerate_config takes it",
}

# (low, high) inclusive, for fields that set resources or scale the update.
BOUNDS: dict[str, tuple[float, float]] = {
    "gradient_accumulation_steps": (1, 1024),
    "dataloader_num_workers": (0, 32),  # processes
    "dataloader_prefetch_factor": (1, 64),
    "dataset_num_proc": (1, 64),  # processes
    "per_device_eval_batch_size": (1, MAX_BATCH),
    "eval_accumulation_steps": (1, 1024),
    "precompute_ref_batch_size": (1, MAX_BATCH),
    "generation_batch_size": (1, MAX_BATCH),
    "steps_per_generation": (1, 1024),
    "num_iterations": (1, 64),
    "num_train_epochs": (0, 10_000),
    "logging_steps": (0, MAX_STEPS),
    "eval_steps": (0, MAX_STEPS),
    "torch_empty_cache_steps": (1, MAX_STEPS),
    "ref_model_sync_steps": (1, MAX_STEPS),
    "ddp_timeout": (1, 7 * 24 * 3600),  # seconds
    "max_grad_norm": (0, 1e4),  # 0: no clipping, said explicitly
    "neftune_noise_alpha": (0, 100),  # the NEFTune paper uses 5-15
    "adam_beta1": (0, 1),
    "adam_beta2": (0, 1),
    "adam_epsilon": (0, 1),
    "label_smoothing_factor": (0, 1),
    "label_smoothing": (0, 0.5),
    "ref_model_mixup_alpha": (0, 1),
    "vllm_gpu_memory_utilization": (0, 1),
    "top_entropy_quantile": (0, 1),
    "min_p": (0, 1),
    "repetition_penalty": (0.01, 100),
    "top_k": (0, 1_000_000),
    "max_tool_calling_iterations": (0, 1000),
    "num_completions_to_print": (0, 10_000),
    "pad_to_multiple_of": (1, 4096),  # tokens; 1 pads each batch to its longest row
}

MAX_FLOAT = 1e6  # any other float: beyond this it is a typo or a ruined run
MAX_INT = 2**31 - 1  # any other integer (seeds, ports)


def refused_reason(field: str) -> str | None:
    for name, why in REFUSED.items():
        if field == name or (name.endswith("*") and field.startswith(name[:-1])):
            return why
    return None


def _numbers(value: Any, path: str):
    """(path, number) for every number in a value, nested dicts and lists included."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]")


def check_policy(fields: dict[str, Any], where: str) -> None:
    """A ValueError naming every field of `fields` the policy refuses, one per line."""
    problems = []
    for field, value in fields.items():
        why = refused_reason(field)
        if why is not None and value not in (None, False):
            problems.append(f"{field}: not passed through ({why})")
            continue
        for path, number in _numbers(value, field):
            if not math.isfinite(number):
                problems.append(f"{path}: {number!r} is not a finite number")
            elif path in BOUNDS and not BOUNDS[path][0] <= number <= BOUNDS[path][1]:
                low, high = BOUNDS[path]
                problems.append(f"{path}: {number!r} is outside {low:g}..{high:g}")
            elif path not in BOUNDS and isinstance(number, float) and abs(number) > MAX_FLOAT:
                problems.append(f"{path}: {number!r} is beyond ±{MAX_FLOAT:g} (a typo?)")
            elif path not in BOUNDS and isinstance(number, int) and abs(number) > MAX_INT:
                problems.append(f"{path}: {number!r} is beyond ±{MAX_INT:,}")
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))
