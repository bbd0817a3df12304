"""evaluation: how the held-out prompts are sampled (greedy, plus k samples for pass@k), and
what they are: the task's held-out rows, or another task's (a plugin, a dataset file)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from selftaught.config.limits import MAX_BATCH, MAX_SAMPLES, MAX_TOKENS, MIN_TEMPERATURE, Strict
from selftaught.config.task import TaskConfig
from selftaught.plugins import named


class LmEvalConfig(Strict):
    """EleutherAI's lm-evaluation-harness on the base model and every round's policy, from task
    YAMLs of your own (offline: `dataset_path: json` with local `data_files`). Results go to
    the round's `lm_eval` table and the evaluation's metadata (lm_eval/<task>/<metric>)."""

    tasks: tuple[str, ...] = Field(min_length=1, description="lm-eval task (or group) names")
    include_path: str | None = Field(
        None, description="a folder of lm-eval task YAMLs (--include_path); its files' contents count in the round hash"
    )
    include_defaults: bool = Field(
        False,
        description="also lm-eval's own task catalogue (its datasets come from the Hugging Face Hub: not offline)",
    )
    limit: int | None = Field(None, ge=1, le=MAX_SAMPLES * 1000, description="documents per task (default: all)")
    num_fewshot: int | None = Field(
        None, ge=0, le=64, description="few-shot examples per prompt (default: each task's own)"
    )
    batch_size: int = Field(16, ge=1, le=MAX_BATCH, description="lm-eval's batch size")
    apply_chat_template: bool = Field(False, description="lm-eval renders prompts with the model's chat template")

    def fingerprint(self) -> str | None:
        """sha256 of the YAML files under include_path (what the tasks are), for the round hash."""
        import hashlib
        from pathlib import Path

        if self.include_path is None:
            return None
        root = Path(self.include_path)
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.y*ml")) if root.is_dir() else []:
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        return h.hexdigest()[:16]


class EvaluationConfig(Strict):
    """How the base model and every round's policy are scored on the held-out prompts."""

    samples_per_prompt: int = Field(
        0,
        ge=0,
        le=MAX_SAMPLES,
        description="k > 0 also samples k per held-out prompt: pass@k, maj@k, distinct answers, solve-rate spread",
    )
    temperature: float = Field(0.8, ge=MIN_TEMPERATURE, le=100, description="for the k samples")
    seed: int = Field(0, description="sampling seed of the k samples (the greedy pass needs none)")
    backend: Literal["hf", "vllm"] | None = Field(
        None,
        description="default: sampling.backend when it is "
        "local (hf, vllm), else hf; a remote server cannot serve "
        "this round's fresh policy",
    )
    max_new_tokens: int = Field(
        100, ge=1, le=MAX_TOKENS, description="most new tokens per held-out completion (greedy and the k samples)"
    )
    batch_size: int = Field(
        256,
        ge=1,
        le=MAX_BATCH,
        description="sequences per forward batch: hf evaluation and judge generation, V-STaR verifier scoring",
    )
    task: TaskConfig | None = Field(
        None,
        description="another task's held-out rows as the evaluation set (a "
        "built-in, a plugin, or task dataset with a file); its verifier scores them. "
        "Default: the experiment's task",
    )
    lm_eval: LmEvalConfig | None = Field(None, description="also run lm-evaluation-harness tasks on every policy")
    control: Literal["warm_start"] | None = Field(
        None,
        description="a control beside every round (assets control_policy, control_evaluation): warm_start "
        "trains the round's steps, seeds, learning rate and init on the warm-start rows alone (SFT), so "
        "the recipe's gain over it is what its self-generated rows add. Not in the round hash: turning it "
        "on adds the control to finished rounds without redoing them",
    )
    verifier: str | None = Field(
        None,
        description="the verifier that scores held-out accuracy; default: "
        "evaluation.task's own, else verification.verifier when it reads references, else "
        "the task's own",
    )

    @field_validator("verifier")
    @classmethod
    def _registered(cls, v: str | None) -> str | None:
        if v is None:
            return v
        plugin = named("verifier", v)
        if not plugin.caps.needs_reference:
            raise ValueError(f"the {plugin.name} verifier is label-free: evaluation scores against references")
        return v

    @field_validator("lm_eval")
    @classmethod
    def _lm_eval_installed(cls, v):
        if v is not None:
            try:
                import lm_eval  # noqa: F401
            except ImportError:
                raise ValueError(
                    "needs EleutherAI's lm-evaluation-harness: pip install 'selftaught[lmeval]' (or lm-eval)"
                ) from None
        return v
