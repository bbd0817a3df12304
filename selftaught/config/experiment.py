"""ExperimentConfig: the sections together, the rules that span them, and the config hashes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import Field, field_validator, model_validator

from selftaught.config.evaluation import EvaluationConfig
from selftaught.config.limits import MAX_ROUND_SAMPLES, MAX_STEPS, Strict
from selftaught.config.model import ModelConfig
from selftaught.config.operations import OperationsConfig, TrackingConfig
from selftaught.config.sampling import SamplingConfig
from selftaught.config.selection import RepairConfig, SelectionConfig
from selftaught.config.task import TaskConfig
from selftaught.config.training import TrainingConfig
from selftaught.config.verification import VerificationConfig


class ExperimentConfig(Strict):
    name: str = Field("demo", pattern=r"^[A-Za-z0-9_\-]+$")
    storage_root: str = Field("data/runs/demo", description="a path, or an object store URL (s3://bucket/prefix)")
    storage_options: dict[str, Any] = Field(default_factory=dict, description=(
        "fsspec options for a URL root, e.g. {endpoint_url: ...} for MinIO; credentials come from the "
        "environment (AWS_ACCESS_KEY_ID, ...), not from here"))
    storage_cache: str | None = Field(None, description="local mirror of a URL root (default ~/.cache/selftaught)")
    max_rounds: int = Field(3, ge=1, le=10_000)
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()
    verification: VerificationConfig = VerificationConfig()
    selection: SelectionConfig = SelectionConfig()
    training: TrainingConfig = TrainingConfig()
    repair: RepairConfig = RepairConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    operations: OperationsConfig = OperationsConfig()

    @field_validator("storage_root")
    @classmethod
    def _root(cls, v: str) -> str:
        from selftaught.objectstore import check_protocol, is_url

        if not v.strip():
            raise ValueError("must name a folder or a URL (an empty root would make the current directory the store)")

        if is_url(v):
            check_protocol(v)
        return v

    # Cross-section rules: each section validates its own keys; the rules below span sections
    # and all live here, in this order (the first that fails is the one reported):
    #   _recipes                      repair.mode rationalize needs reference answers (not a majority or
    #                                 judge verifier, not label_free sources); selection.require_rationale
    #                                 needs the arithmetic verifier; training.dpo.pairs reference needs
    #                                 training.objective dpo; training.verifier (V-STaR) needs
    #                                 evaluation.samples_per_prompt >= 2
    #   _chat_needs_a_real_tokenizer  task.chat_template needs a model.base other than tiny
    #   _objectives                   model.warm_start trains with objective sft; training.grpo needs
    #                                 objective grpo; grpo rolls out inside the policy step, so it takes
    #                                 none of the stages that read offline samples (repair, sampling.balance
    #                                 or budget, training.verifier, task.curriculum), no judge verifier and
    #                                 no launcher
    #   _lora_fits_vllm               training.lora.r <= sampling.vllm.max_lora_rank when vllm samples or
    #                                 evaluates a LoRA policy
    #   _round_fits                   a round stays within MAX_ROUND_SAMPLES samples, its last round within
    #                                 MAX_STEPS training steps
    @model_validator(mode="after")
    def _recipes(self):
        label_free = self.verification.verifier in ("majority", "judge") or any(
            src is not None and src.label_free for src in (self.task.train, self.task.test))
        if self.repair.mode == "rationalize" and label_free:
            raise ValueError("repair.mode rationalize gives the reference answer as a hint: it needs a task "
                             "with references and a verifier that checks them (not majority, judge or "
                             "label_free)")
        verifier = self.verification.verifier or ("arithmetic" if self.task.name == "arithmetic" else None)
        if self.selection.require_rationale and verifier != "arithmetic":
            raise ValueError("selection.require_rationale keeps samples whose steps check out: only the arithmetic "
                             "verifier checks steps, so with another every sample would be dropped")
        if self.training.dpo.pairs == "reference" and self.training.objective != "dpo":
            raise ValueError("training.dpo.pairs only applies with training.objective dpo")
        if self.training.verifier is not None and self.evaluation.samples_per_prompt < 2:
            raise ValueError("training.verifier (V-STaR) is judged by best-of-k: set evaluation."
                             "samples_per_prompt >= 2")
        return self

    @model_validator(mode="after")
    def _chat_needs_a_real_tokenizer(self):
        if self.task.chat_template and self.model.base == "tiny":
            raise ValueError("task.chat_template needs model.base to be a model with a chat template "
                             "(the tiny character tokenizer has none)")
        return self

    @model_validator(mode="after")
    def _objectives(self):
        if self.model.warm_start is not None and self.model.warm_start.objective != "sft":
            raise ValueError("model.warm_start trains on reference solutions: objective must be sft")
        t = self.training
        if t.grpo is not None and t.objective != "grpo":
            raise ValueError("training.grpo only applies with training.objective grpo")
        if self.model.warm_start is not None and self.model.warm_start.grpo is not None:
            raise ValueError("model.warm_start trains with objective sft: model.warm_start.grpo does not apply")
        if t.objective == "grpo":
            offline = [name for name, used in (
                ("repair.mode", self.repair.mode != "none"), ("sampling.balance", self.sampling.balance is not None),
                ("sampling.budget", self.sampling.budget.mode != "uniform"),
                ("training.verifier", t.verifier is not None),
                ("task.curriculum", self.task.curriculum is not None)) if used]
            if offline:
                raise ValueError(f"training.objective grpo generates its rollouts inside training; {offline} "
                                 "work on offline samples, which a grpo round does not draw")
            if self.verification.verifier == "judge":
                raise ValueError("training.objective grpo with the judge verifier is not supported: the judge "
                                 "would generate inside every training step (use a programmatic verifier or "
                                 "majority)")
            if t.launcher.launched():
                raise ValueError("training.objective grpo runs in the step's process; training.launcher "
                                 "(accelerate launch) supports sft and dpo")
        return self

    @model_validator(mode="after")
    def _lora_fits_vllm(self):
        uses_vllm = "vllm" in (self.sampling.backend, self.evaluation.backend)
        if uses_vllm and self.training.method == "lora" and self.training.lora.r > self.sampling.vllm.max_lora_rank:
            raise ValueError(f"training.lora.r ({self.training.lora.r}) is above sampling.vllm.max_lora_rank "
                             f"({self.sampling.vllm.max_lora_rank}); vLLM would refuse the adapter")
        return self

    @model_validator(mode="after")
    def _round_fits(self):
        size = self.round_size()
        if size["samples"] > MAX_ROUND_SAMPLES:
            raise ValueError(f"a round would generate {size['samples']:,} samples ({size['prompts']:,} prompts x "
                             f"{size['samples_per_prompt']:,}); the limit is {MAX_ROUND_SAMPLES:,}: "
                             + ("use fewer training steps, grpo.prompts_per_step or grpo.num_generations"
                                if self.training.objective == "grpo" else "use smaller pools"))
        if size["steps_last_round"] > MAX_STEPS:
            raise ValueError(f"round {self.max_rounds} would train {size['steps_last_round']:,} steps (max_steps "
                             f"{self.training.max_steps} x steps_growth {self.training.steps_growth:g}^"
                             f"{self.max_rounds - 1}); the limit is {MAX_STEPS:,}")
        return self

    def round_size(self) -> dict[str, int]:
        """What one round costs at most: prompts, samples and new tokens generated, training
        steps (first and last round) and held-out prompts."""
        t, s = self.task, self.sampling
        prompts = sum(t.pool.values()) if t.procedural() else t.pool_size
        per_prompt = max(s.n, s.budget.max_n if s.budget.mode == "solve_rate" else 0)
        new_tokens = s.max_new_tokens
        evals = sum(t.eval.values()) if t.procedural() else t.eval_size
        steps_last = self.training.max_steps * self.training.steps_growth ** (self.max_rounds - 1)
        if self.training.objective == "grpo":  # rollouts: (the last round's) steps x prompts per step x group
            g = self.training.grpo_settings()
            prompts = int(min(steps_last, 2 ** 62)) * g.prompts_per_step
            per_prompt, new_tokens = g.num_generations, g.max_completion_length
        return {"prompts": prompts, "samples_per_prompt": per_prompt, "samples": prompts * per_prompt,
                "new_tokens": prompts * per_prompt * new_tokens, "steps_first_round": self.training.steps_for(1),
                "steps_last_round": int(min(steps_last, 2 ** 62)), "eval_prompts": evals}

    def eval_backend(self) -> str:
        if self.evaluation.backend:
            return self.evaluation.backend
        return self.sampling.backend if self.sampling.backend in ("hf", "vllm") else "hf"

    def round_hash(self) -> str:
        """Hash of what a round's outputs depend on: these config sections and the code version
        (not the name, storage, round count or schedule). A round materialized under another
        value is stale."""
        from selftaught import __version__

        sections = self.section_hash("task", "model", "sampling", "verification", "selection", "repair",
                                     "training", "evaluation")
        return hashlib.sha256(f"{sections}:{__version__}".encode()).hexdigest()[:16]

    def section_hash(self, *sections: str) -> str:
        """Hash of the named sections (all when none): what a cached artifact depends on."""
        data = drop_defaults(self.model_dump(mode="json"), HASHED_WHEN_SET)  # keys newer than the runs on disk
        picked = {k: data[k] for k in sections} if sections else data
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


def drop_defaults(data: dict, entries: dict[tuple[str, ...], object]) -> dict:
    """`data` (a config dump) without the keys of `entries` that hold their default value."""
    for path, default in entries.items():
        *parents, leaf = path
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(leaf, default) == default:
            node.pop(leaf, None)
    return data


# Keys added after 0.3.0 count in the hashes only when set to something else than their
# default, so rounds and base models made before they existed do not all turn stale.
HASHED_WHEN_SET = {("sampling", "dtype"): "float32", ("training", "bf16"): None,
                   ("verification", "sandbox", "allow_unisolated"): False,
                   ("verification", "max_audit_disagreement"): None,
                   ("model", "warm_start", "bf16"): None, ("training", "verifier", "bf16"): None,
                   ("training", "grpo"): None, ("model", "warm_start", "grpo"): None,
                   ("training", "dtype"): "auto", ("model", "warm_start", "dtype"): "auto",
                   ("training", "trl"): {}, ("model", "warm_start", "trl"): {},
                   ("operations", "tracking"): TrackingConfig().model_dump(mode="json"),
                   ("operations", "price_per_hour"): None,
                   ("operations", "auto_continue", "min_points_per_hour"): None}
# ... and in the base model's cache key (assets/setup.py), which dumps the model section as is.
BASE_KEY_WHEN_SET = {path[1:]: default for path, default in HASHED_WHEN_SET.items()
                     if path in {("model", "warm_start", "dtype"), ("model", "warm_start", "trl")}}
