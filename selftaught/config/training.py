"""training: the objective, optimizer settings, LoRA, the V-STaR verifier and the launcher."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from selftaught.config.limits import MAX_BATCH, MAX_SAMPLES, MAX_STEPS, MAX_TOKENS, Strict


class LoraConfig(Strict):
    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1, le=65_536)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class PreferenceConfig(Strict):
    """objective: dpo. Pairs are (correct, incorrect) samples of one prompt."""

    beta: float = Field(0.1, gt=0)
    rpo_alpha: float = Field(1.0, ge=0, description="weight of the NLL term on the chosen answer (RPO); 0 = DPO")
    reference: Literal["previous", "base"] = Field("previous", description="reference model: the previous "
                                                   "round's policy (iterative RPO) or the base model")
    max_pairs_per_prompt: int = Field(1, ge=1, le=MAX_SAMPLES)
    pairs: Literal["correct_incorrect", "best_worst", "reference"] = Field(
        "correct_incorrect", description="correct_incorrect: (correct, incorrect) samples of a prompt (RPO); "
        "best_worst: highest vs lowest reward, ties dropped (judge scores, self-rewarding); reference: the "
        "dataset's worked solution vs the policy's own sample (SPIN)")


class VerifierTrainingConfig(Strict):
    """V-STaR: a verifier trained with DPO on (correct, incorrect) pairs of every round so far,
    next to the policy; evaluation ranks k samples by its score (best-of-k)."""

    max_steps: int = Field(100, ge=1, le=MAX_STEPS)
    learning_rate: float = Field(5e-5, gt=0, le=1.0)
    batch_size: int = Field(16, ge=1, le=MAX_BATCH)
    beta: float = Field(0.1, gt=0)
    max_pairs_per_prompt: int = Field(2, ge=1, le=MAX_SAMPLES)


class LauncherConfig(Strict):
    """Train in separate processes through `accelerate launch` (all GPUs of a node)."""

    processes: int = Field(1, ge=1, description="training processes; > 1 launches `accelerate launch` (DDP; "
                           "gloo on CPU)")
    accelerate_config: str | None = Field(None, description="an accelerate config file (DDP, FSDP, DeepSpeed), "
                                          "passed through; implies a launch even with processes 1")
    extra_args: tuple[str, ...] = Field((), description="more `accelerate launch` arguments, passed through")

    def launched(self) -> bool:
        return self.processes > 1 or self.accelerate_config is not None


class TrainingConfig(Strict):
    objective: Literal["sft", "dpo"] = Field("sft", description="sft on kept samples, or dpo/rpo on "
                                             "(correct, incorrect) pairs")
    dpo: PreferenceConfig = PreferenceConfig()
    method: Literal["full", "lora"] = "full"
    init: Literal["continue", "base"] = Field(
        "continue", description="continue from the previous round's policy, or restart from the base model"
    )
    max_steps: int = Field(500, ge=1, le=MAX_STEPS)
    steps_growth: float = Field(1.0, ge=1.0, le=10.0, description="round k trains max_steps * steps_growth^(k-1) steps "
                                "(STaR: 1.2)")
    learning_rate: float = Field(3e-4, gt=0, le=1.0)
    batch_size: int = Field(16, ge=1, le=MAX_BATCH)
    warmup_steps: int = Field(0, ge=0, le=MAX_STEPS)
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(256, ge=8, le=MAX_TOKENS)
    save_every: int = Field(100, ge=0, description="checkpoint interval for resume; 0 disables")
    completion_only_loss: bool = Field(True, description="False also puts loss on the prompt tokens")
    bf16: bool | None = Field(None, description="bfloat16 mixed precision (float32 master weights); default: on "
                              "GPUs that support it, off on CPU (true on a CPU with AMX is ~1.4x faster)")
    seed: int = 0
    lora: LoraConfig = LoraConfig()
    verifier: VerifierTrainingConfig | None = Field(None, description="V-STaR: also train a DPO verifier")
    launcher: LauncherConfig = LauncherConfig()

    def steps_for(self, round_index: int) -> int:
        return max(1, round(self.max_steps * self.steps_growth ** (round_index - 1)))
