"""Generation backends behind one small interface.

A backend turns prompts into `n` completions each. Implemented now: HF
transformers (batched, seeded; the CPU backend for the demo and the tests).
vLLM and OpenAI-compatible servers plug in by implementing `Backend`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

log = logging.getLogger("selftaught.synth")


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int = 0
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature == 0 and self.n > 1:
            raise ValueError("greedy decoding (temperature 0) with n > 1 gives n identical samples")


Progress = Callable[[int, int], None]


class Backend(Protocol):
    name: str

    def generate(
        self, prompts: Sequence[str], params: SamplingParams, progress: Progress | None = None
    ) -> list[list[str]]:
        """Return, for each prompt, `params.n` completions (prompt text excluded)."""


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text


class HFBackend:
    """Batched `model.generate` with HF transformers on the current torch device."""

    name = "hf"

    def __init__(self, model_dir: str, batch_size: int = 64, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).to(self.device).eval()
        self.batch_size = batch_size

    def generate(self, prompts, params, progress=None):
        import torch

        out: list[list[str]] = []
        # Batches hold whole prompts; each batch's seed depends only on its index, so
        # a result does not depend on how many batches ran before in this process.
        per_batch = max(1, self.batch_size // params.n)
        started, tokens = time.monotonic(), 0
        for b, start in enumerate(range(0, len(prompts), per_batch)):
            chunk = list(prompts[start : start + per_batch])
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            torch.manual_seed(params.seed * 1_000_003 + b)
            sample = params.temperature > 0
            with torch.no_grad():
                gen = self.model.generate(
                    **enc,
                    do_sample=sample,
                    temperature=params.temperature if sample else None,
                    top_p=params.top_p if sample else None,
                    top_k=0 if sample else None,
                    num_return_sequences=params.n,
                    max_new_tokens=params.max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=self.tokenizer.eos_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            tokens += int((new != self.tokenizer.pad_token_id).sum())
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            texts = [cut_at_stop(t, params.stop) for t in texts]
            out.extend(texts[i * params.n : (i + 1) * params.n] for i in range(len(chunk)))
            if progress:
                progress(len(out), len(prompts))
        elapsed = time.monotonic() - started
        log.info("hf: %d prompts x %d samples, %d tokens in %.1fs (%.0f tok/s)",
                 len(prompts), params.n, tokens, elapsed, tokens / max(elapsed, 1e-9))
        return out


def load_backend(kind: str, model_dir: str, **options) -> Backend:
    if kind == "hf":
        return HFBackend(model_dir, **options)
    raise ValueError(f"unknown generation backend '{kind}' (available: hf)")
