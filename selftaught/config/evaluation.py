"""evaluation: how the held-out prompts are sampled (greedy, plus k samples for pass@k)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from selftaught.config.limits import MAX_BATCH, MAX_SAMPLES, MAX_TOKENS, Strict


class EvaluationConfig(Strict):
    samples_per_prompt: int = Field(0, ge=0, le=MAX_SAMPLES, description="k > 0 also samples k per held-out prompt: pass@k, "
                                    "maj@k, distinct answers, solve-rate spread")
    temperature: float = Field(0.8, gt=0, le=100, description="for the k samples")
    seed: int = 0
    backend: Literal["hf", "vllm"] | None = Field(None, description="default: sampling.backend when it is "
                                                   "local (hf, vllm), else hf; a remote server cannot serve "
                                                   "this round's fresh policy")
    max_new_tokens: int = Field(100, ge=1, le=MAX_TOKENS)
    batch_size: int = Field(256, ge=1, le=MAX_BATCH)
