"""Every seed selftaught derives, in one place, each named by what it seeds.

A seed depends only on the configured seed and the position of what it seeds (round, split,
shard, prompt, batch, step), never on what ran before in the process: a resumed or re-run
stage draws exactly what an uninterrupted one drew. The formulas are part of every round's
data: changing one changes the rows, so it needs a version bump (CHANGELOG.md).
"""

from __future__ import annotations

import hashlib

# ---- task prompts (synth/tasks.py): each split draws from its own stream of task.seed
_TASK_STREAM = 7919  # a prime: task.seed k's splits never meet task.seed k+1's


def task_split_seed(task_seed: int, split: str) -> int:
    """The procedural task's `split` ("warm_start" or "eval") draw."""
    return task_seed * _TASK_STREAM + {"warm_start": 1, "eval": 2}[split]


def task_round_seed(task_seed: int, round_index: int) -> int:
    """Round `round_index`'s fresh training prompts of a procedural task."""
    return task_seed * _TASK_STREAM + 1000 + round_index


# ---- sampling (synth/sampling.py, synth/generate.py, synth/backends.py)
def sampling_round_seed(sampling_seed: int, round_index: int) -> int:
    """Round `round_index`'s sampling stream: another each round, the same on a rerun."""
    return sampling_seed * 1000 + round_index


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed from a base seed and labels (a shard index, a prompt index): a prompt's
    samples depend on its position in the job, not on what ran before it."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def shard_seed(job_seed: int, shard_index: int) -> int:
    """A generation job's shard `shard_index`: shard boundaries, not the worker, decide it."""
    return derive_seed(job_seed, "shard", shard_index)


def prompt_seed(params_seed: int, prompt_index: int) -> int:
    """A seeded backend's request for prompt `prompt_index` of a batch (vLLM, OpenAI)."""
    return derive_seed(params_seed, prompt_index)


def hf_batch_seed(params_seed: int, batch_index: int) -> int:
    """HF transformers' torch seed for batch `batch_index` of a shard."""
    return params_seed * 1_000_003 + batch_index


# ---- training (train/)
def training_seed(training_seed_: int, round_index: int) -> int:
    """Round `round_index`'s trainer seed (data order, init of a fresh adapter, dropout); the
    warm start trains with round index 0, i.e. training.seed itself."""
    return training_seed_ + round_index


def mixed_seed(*parts: int) -> int:
    """A 31-bit seed mixed from integers with numpy's SeedSequence: GRPO's per-step reseed
    (seed, step) and its prompt order per epoch (seed, epoch)."""
    import numpy as np

    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0]) % 2**31
