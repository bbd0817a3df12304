"""training: the objective, optimizer settings, LoRA, the V-STaR verifier and the launcher."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from selftaught.config.limits import MAX_BATCH, MAX_SAMPLES, MAX_STEPS, MAX_TOKENS, MIN_TEMPERATURE, Strict
from selftaught.config.passthrough import check_policy
from selftaught.plugins import OBJECTIVES, named


class LoraConfig(Strict):
    """method: lora. A low-rank adapter, trained with PEFT on the frozen model's layers."""

    r: int = Field(16, ge=1, le=1024, description="the adapter's rank")
    alpha: int = Field(32, ge=1, le=65_536, description="scaling: the adapter's update is multiplied by alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter's input")
    target_modules: tuple[str, ...] = Field(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        description="names of the modules that get an adapter (default: a Llama-style model's projections)",
    )


class PreferenceConfig(Strict):
    """objective: dpo. Pairs are (correct, incorrect) samples of one prompt."""

    beta: float = Field(0.1, gt=0, description="DPO's beta: how strongly the policy is held near the reference model")
    rpo_alpha: float = Field(1.0, ge=0, description="weight of the NLL term on the chosen answer (RPO); 0 = DPO")
    reference: Literal["previous", "base"] = Field(
        "previous", description="reference model: the previous round's policy (iterative RPO) or the base model"
    )
    max_pairs_per_prompt: int = Field(1, ge=1, le=MAX_SAMPLES, description="most pairs made from one prompt's samples")
    pairs: Literal["correct_incorrect", "best_worst", "reference"] = Field(
        "correct_incorrect",
        description="correct_incorrect: (correct, incorrect) samples of a prompt (RPO); "
        "best_worst: highest vs lowest reward, ties dropped (judge scores, self-rewarding); reference: the "
        "dataset's worked solution vs the policy's own sample (SPIN)",
    )


def check_trl_passthrough(objective: str, fields: dict[str, Any], where: str = "training.trl") -> None:
    """A ValueError naming the fields of `fields` that the installed TRL's config class for
    `objective` does not have, or that selftaught sets from its own keys; then the class is
    built once with them, so a bad value (optim: adamw_foo) is reported at load time too."""
    if not fields:
        return
    import dataclasses
    import tempfile
    import warnings

    import trl

    caps = OBJECTIVES.get(objective).caps  # its TRL config class, and the fields selftaught sets
    cls = getattr(trl, caps.trl_config)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(
            f"{where}: {unknown} are not {cls.__name__} fields of the installed TRL {trl.__version__} "
            f"(objective {objective})"
        )
    owned = dict(caps.own_fields)
    own = {k: owned[k] for k in sorted(fields) if k in owned}
    if own:
        raise ValueError(f"{where}: selftaught sets " + ", ".join(f"{k} ({_instead(v)})" for k, v in own.items()))
    check_policy(fields, where)  # finite, bounded, nothing that reaches the network
    if fields.get("padding_free") and not fields.get("packing"):  # SFTTrainer refuses it once built
        raise ValueError(
            f"{where}: padding_free without packing leaves training.max_length unenforced, which "
            f"TRL {trl.__version__} refuses; set packing: true (its default bfd strategy is "
            "padding-free)"
        )
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TRL's own defaults use names transformers renamed
        try:
            cls(output_dir=tmp, use_cpu=True, bf16=False, report_to="none", **fields)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{where}: the installed TRL {trl.__version__} refuses it: {str(exc).splitlines()[0]}"
            ) from None


def _instead(setter: str) -> str:
    """What to do instead of passing a field selftaught sets: the key that sets it, or why."""
    return f"use {setter}" if setter.startswith(("training.", "operations.")) else setter


class GRPOTrainingConfig(Strict):
    """objective: grpo. Online RL in the policy step: TRL's GRPOTrainer samples
    `num_generations` completions per prompt of this round, the configured verifier rewards
    them (correct 1, incorrect 0, unverifiable none), every rollout is kept as the round's
    rollouts table. Steps, learning rate, LoRA and checkpoints come from `training`."""

    num_generations: int = Field(4, ge=2, le=MAX_SAMPLES, description="completions per prompt (one group)")
    prompts_per_step: int = Field(4, ge=1, le=MAX_BATCH, description="groups per optimizer step")
    max_completion_length: int = Field(64, ge=1, le=MAX_TOKENS, description="most new tokens per rollout")
    temperature: float = Field(1.0, ge=MIN_TEMPERATURE, le=10, description="rollouts' sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1, description="rollouts' nucleus sampling (1: off)")
    loss_type: str = Field(
        "dapo", description="the installed TRL's GRPOConfig.loss_type: grpo, dr_grpo, dapo, bnpo, ..."
    )
    beta: float = Field(0.0, ge=0, description="KL to the initial policy (0: no reference model)")
    epsilon: float = Field(
        0.2, gt=0, lt=1, description="clip range of the policy ratio (its upper end too unless epsilon_high)"
    )
    epsilon_high: float | None = Field(None, gt=0, lt=10, description="DAPO's clip-higher bound")
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="Dr. GRPO: none")
    use_vllm: bool = Field(False, description="generate with vLLM inside TRL (GPU)")
    vllm_mode: Literal["colocate", "server"] = Field(
        "colocate",
        description="use_vllm: colocate runs vLLM in the "
        "training process (its GPUs); server talks to a `trl vllm-serve` "
        "process on this machine",
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data):
        if isinstance(data, dict) and "trl" in data:
            raise ValueError("grpo.trl moved to training.trl (one pass-through for every objective)")
        return data

    @model_validator(mode="after")
    def _against_installed_trl(self):
        import dataclasses

        import trl
        from trl.trainer.grpo_config import GRPOConfig

        fields = {f.name: f for f in dataclasses.fields(GRPOConfig)}
        help_text = fields["loss_type"].metadata.get("help", "")
        supported = re.findall(r"'(\w+)'", help_text.split("Supported values are", 1)[-1].split(". ", 1)[0])
        if supported and self.loss_type not in supported:
            raise ValueError(
                f"grpo.loss_type {self.loss_type!r} is not one of the installed TRL {trl.__version__}'s: {supported}"
            )
        return self


class VerifierTrainingConfig(Strict):
    """V-STaR: a verifier trained with DPO on (correct, incorrect) pairs of every round so far,
    next to the policy; evaluation ranks k samples by its score (best-of-k)."""

    max_steps: int = Field(
        100, ge=1, le=MAX_STEPS, description="DPO steps the verifier trains each round (from the base model)"
    )
    learning_rate: float = Field(5e-5, gt=0, le=1.0, description="the verifier's learning rate")
    batch_size: int = Field(16, ge=1, le=MAX_BATCH, description="pairs per device in a batch")
    beta: float = Field(0.1, gt=0, description="the verifier's DPO beta")
    max_pairs_per_prompt: int = Field(2, ge=1, le=MAX_SAMPLES, description="most pairs made from one prompt's samples")


class LauncherConfig(Strict):
    """Train in separate processes through `accelerate launch` (all GPUs of a node)."""

    processes: int = Field(
        1, ge=1, description="training processes; > 1 launches `accelerate launch` (DDP; gloo on CPU)"
    )
    accelerate_config: str | None = Field(
        None,
        description="an accelerate config file (DDP, FSDP, DeepSpeed), "
        "passed through; implies a launch even with processes 1",
    )
    extra_args: tuple[str, ...] = Field((), description="more `accelerate launch` arguments, passed through")

    def launched(self) -> bool:
        return self.processes > 1 or self.accelerate_config is not None


class TrainingConfig(Strict):
    """How a policy is trained: each round's policy step, and model.warm_start's fine-tune."""

    objective: str = Field(
        "sft",
        description="sft on kept samples, dpo/rpo on (correct, incorrect) pairs, or "
        "grpo: online RL on this round's prompts with the verifier as reward (the registered "
        "objectives: selftaught plugins)",
    )
    dpo: PreferenceConfig = Field(PreferenceConfig(), description="objective dpo's settings")
    grpo: GRPOTrainingConfig | None = Field(None, description="objective grpo's settings (defaults when unset)")
    method: Literal["full", "lora"] = Field(
        "full", description="full: train every weight; lora: train a LoRA adapter (training.lora)"
    )
    init: Literal["continue", "base"] = Field(
        "continue", description="continue from the previous round's policy, or restart from the base model"
    )
    max_steps: int = Field(
        500, ge=1, le=MAX_STEPS, description="optimizer steps (in round 1; later rounds: steps_growth)"
    )
    steps_growth: float = Field(
        1.0, ge=1.0, le=10.0, description="round k trains max_steps * steps_growth^(k-1) steps (STaR: 1.2)"
    )
    learning_rate: float = Field(3e-4, gt=0, le=1.0, description="peak learning rate")
    batch_size: int = Field(
        16,
        ge=1,
        le=MAX_BATCH,
        description="sft, dpo: rows (dpo: pairs) per device in a "
        "batch; grpo sets its own (grpo.num_generations x grpo.prompts_per_step)",
    )
    warmup_steps: int = Field(
        0, ge=0, le=MAX_STEPS, description="learning-rate warmup steps (sft, grpo; dpo takes it in training.trl)"
    )
    weight_decay: float = Field(
        0.0, ge=0, le=10, description="the optimizer's weight decay (sft; other objectives take it in training.trl)"
    )
    max_length: int = Field(
        256,
        ge=8,
        le=MAX_TOKENS,
        description="sft, dpo: longest training row in tokens (prompt and completion); longer ones are truncated",
    )
    save_every: int = Field(100, ge=0, description="checkpoint interval for resume; 0 disables")
    completion_only_loss: bool = Field(True, description="False also puts loss on the prompt tokens")
    bf16: bool | None = Field(
        None,
        description="bfloat16 mixed precision (float32 master weights); default: on "
        "GPUs that support it and on CPUs with AMX / AVX-512 BF16 (1.67x there), off elsewhere; "
        "the policy's provenance records what was used and why",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="the weights' dtype while training: auto is bfloat16 on a GPU that supports it, else float32",
    )
    trl: dict[str, Any] = Field(
        {},
        description="more fields of the installed TRL's SFTConfig / DPOConfig / "
        "GRPOConfig (by objective), passed through: gradient_accumulation_steps, "
        "lr_scheduler_type, optim, max_grad_norm, packing, padding_free, ...",
    )
    seed: int = Field(0, description="training seed; round k trains with seed + k (the warm start with seed)")
    lora: LoraConfig = Field(LoraConfig(), description="the adapter's settings (method lora)")
    verifier: VerifierTrainingConfig | None = Field(None, description="V-STaR: also train a DPO verifier")
    launcher: LauncherConfig = Field(
        LauncherConfig(), description="train in the step's process, or through `accelerate launch`"
    )

    @field_validator("objective")
    @classmethod
    def _registered(cls, v: str) -> str:
        named("objective", v)
        return v

    @model_validator(mode="after")
    def _trl_passthrough(self):
        check_trl_passthrough(self.objective, self.trl)
        return self

    def objective_caps(self):
        """The objective's capabilities (selftaught.plugins.ObjectiveCaps)."""
        return OBJECTIVES.get(self.objective).caps

    def grpo_settings(self) -> GRPOTrainingConfig:
        return self.grpo or GRPOTrainingConfig()

    def steps_for(self, round_index: int) -> int:
        return max(1, round(self.max_steps * self.steps_growth ** (round_index - 1)))
