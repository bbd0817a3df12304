"""verification: which verifier scores samples, the code sandbox's limits, the LLM judge and
user verifiers (plugins)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from selftaught.config.limits import MAX_BATCH, MAX_TOKENS, Strict
from selftaught.config.sampling import OpenAIConfig
from selftaught.plugins import named


class SandboxConfig(Strict):
    """Limits for each program the sandbox verifier runs (code tasks)."""

    wall_seconds: float = Field(
        10.0,
        gt=0,
        le=86_400,
        description="wall-clock limit of one run (program and its tests), in seconds; then every process is killed",
    )
    cpu_seconds: int = Field(5, ge=1, le=86_400, description="CPU seconds of each program process (RLIMIT_CPU)")
    memory_mb: int = Field(
        1024,
        ge=64,
        le=1_048_576,
        description="memory limit, in MB: each process's address "
        "space (RLIMIT_AS); in a jail also the program's processes together",
    )
    max_processes: int = Field(16, ge=1, le=4096, description="processes the program may run at once (RLIMIT_NPROC)")
    disk_mb: int = Field(
        64,
        ge=1,
        le=1_048_576,
        description="size of the writable /tmp, and the largest file the program may write, in MB",
    )
    max_output_kb: int = Field(
        1024, ge=1, le=1_048_576, description="cap on stdout and on stderr, in KB; more ends the run"
    )
    workers: int | None = Field(None, ge=1, description="programs at once (default: CPU count)")
    allow_unisolated: bool = Field(
        False,
        description="run model-written code where no namespace can be made "
        "(not root, no user namespaces), with rlimits and the guard only",
    )


JUDGE_TEMPLATE = "Rate the answer from 1 (wrong) to 5 (right).\nQuestion: {prompt}\nAnswer: {completion}\nScore:"


class JudgeConfig(Strict):
    """verifier: judge. An LLM scores each sample; reward = score / max_score."""

    model: str = Field(
        "policy",
        description="policy: the model that wrote the samples judges them "
        "(self-rewarding); base: the base model; else a local model directory, a hub id or a "
        ".gguf file / package:NAME (converted once, like model.base)",
    )
    backend: Literal["hf", "vllm", "openai"] | None = Field(
        None, description="default: the evaluation backend; openai uses judge.openai"
    )
    openai: OpenAIConfig | None = Field(
        None, description="the judge's OpenAI-compatible server (required with backend openai)"
    )
    template: str = Field(JUDGE_TEMPLATE, description="placeholders {prompt} and {completion}")
    max_score: int = Field(
        5,
        ge=1,
        le=1_000_000,
        description="top of the template's scale; a reply whose first number is not in 0..max_score is unverifiable",
    )
    threshold: float = Field(4, description="score at or above which a sample counts as correct")
    max_new_tokens: int = Field(8, ge=1, le=MAX_TOKENS, description="most tokens the judge writes per sample (greedy)")

    @model_validator(mode="after")
    def _check(self):
        for key in ("{prompt}", "{completion}"):
            if key not in self.template:
                raise ValueError(f"judge template must contain {key}")
        if self.backend == "openai" and self.openai is None:
            raise ValueError("judge backend 'openai' needs a judge.openai section (base_url, model)")
        return self


class PluginConfig(Strict):
    """How user verifiers run (code outside selftaught: an entry point, module:attribute or
    file.py:attribute). Built-in verifiers ignore this section."""

    threshold: float | None = Field(
        None,
        description="a verifier that returns a score: correct at or above it "
        "(default: the plugin's declared threshold, else 1.0)",
    )
    timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="per batch; a batch that runs longer is unverifiable (its worker process is killed)",
    )
    batch_size: int = Field(
        256, ge=1, le=MAX_BATCH, description="samples per call of a batch verifier (a prompt's samples are never split)"
    )
    isolated: bool = Field(
        True,
        description="run the verifier in a worker process (timeouts, and a crash is "
        "unverifiable rows); false calls it in the pipeline's process (for a debugger)",
    )
    options: dict[str, Any] = Field({}, description="keyword arguments for a verifier class")


class VerificationConfig(Strict):
    """Which verifier scores each round's samples, and the settings of the built-in and user verifiers."""

    verifier: str | None = Field(
        None,
        description="default: the task's own (arithmetic; numeric for gsm8k and the chat tasks; math for "
        "math; sandbox for humaneval and mbpp; exact_match for dataset). A built-in (arithmetic, numeric, math, exact_match, "
        "majority, sandbox, judge), an installed package's (entry point group selftaught.verifiers), "
        "module:attribute, or file.py:attribute beside the config",
    )
    plugin: PluginConfig = Field(PluginConfig(), description="how a user verifier runs (refused with a built-in one)")
    judge: JudgeConfig = Field(JudgeConfig(), description="the LLM judge (verifier judge)")
    sandbox: SandboxConfig = Field(SandboxConfig(), description="limits of each program the sandbox verifier runs")
    max_unverifiable_share: float = Field(
        0.2,
        ge=0,
        le=1,
        description="stop the round when more than this share of its samples (grpo: rollouts) is unverifiable",
    )
    max_audit_disagreement: float | None = Field(
        None,
        ge=0,
        le=1,
        description="stop the round when the second "
        "check (filters/audit.py) disagrees on more than this share of the "
        "correct samples; default: only warn",
    )
    audit_rows: int | None = Field(
        20_000,
        ge=1,
        description="the audit's second opinion re-checks at most this many correct samples (a seeded "
        "random sample; null: all of them); its tells read every one",
    )
    timeout_seconds: int = Field(5, ge=1, description="math: per-item parse/verify timeout")
    workers: int | None = Field(None, ge=1, description="math: worker processes (default: CPU count)")
    majority_answer: Literal["numeric", "math"] = Field("numeric", description="majority: how answers are extracted")
    majority_min_share: float = Field(0.0, ge=0, le=1, description="majority: below this vote share, unverifiable")
    majority_break_ties: bool = Field(
        False, description="majority: on a tie take the smallest answer, else unverifiable"
    )

    @field_validator("verifier")
    @classmethod
    def _registered(cls, v: str | None) -> str | None:
        if v is not None:
            named("verifier", v)
        return v
