"""sampling: the generation backend (hf, vllm, an OpenAI-compatible server), B-STaR and budgets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from selftaught.config.limits import MAX_BATCH, MAX_PROMPTS, MAX_SAMPLES, MAX_TOKENS, MIN_TEMPERATURE, Strict


class OpenAIConfig(Strict):
    """An OpenAI-compatible completions endpoint (`vllm serve`, a teacher model, a provider)."""

    base_url: str = Field(description="e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="model name the server knows")
    api_key_env: str | None = Field(
        None,
        description="environment variable holding the API key; "
        "the key itself never goes into a config, table or metadata",
    )
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
    """vLLM's offline engine, wherever the vllm backend generates (sampling, evaluation, a judge)."""

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one engine splits the model over")
    gpu_memory_utilization: float = Field(
        0.85,
        gt=0,
        le=1,
        description="share of each GPU's memory the engine may take (weights and KV cache); not passed without CUDA",
    )
    max_lora_rank: int = Field(64, ge=1, description="must be >= training.lora.r")
    max_model_len: int | None = Field(
        None, ge=16, description="context length in tokens (prompt and completion); None: the model's own"
    )
    dtype: str = Field("auto", description="the weights' dtype, as vLLM takes it (auto, bfloat16, float16, float32)")
    enforce_eager: bool = Field(False, description="no CUDA graphs: less memory and a faster start, slower generation")
    python: str | None = Field(
        None,
        description="the interpreter that runs the isolated vllm job, absolute or relative to the project root, "
        "e.g. .venv-vllm/bin/python (vLLM's CPU build needs an environment of its own: make "
        ".venv-vllm/.installed); None: this one. Not in the round hash (it says where, not what)",
    )


class BalanceConfig(Strict):
    """B-STaR: before sampling, try each temperature on a dev slice of the pool and keep the
    (temperature, reward threshold) with the best balance score."""

    temperatures: tuple[float, ...] = Field(
        (0.5, 0.8, 1.1), description="candidate sampling temperatures tried on the dev slice"
    )
    thresholds: tuple[float, ...] = Field(
        (1.0,),
        description="candidate reward thresholds in [0, 1]: a correct "
        "sample is kept only with a reward at or above the chosen one",
    )
    dev_prompts: int = Field(32, ge=1, le=MAX_PROMPTS, description="pool prompts sampled per candidate temperature")
    desired_correct: int = Field(
        4, ge=1, le=MAX_SAMPLES, description="n*: distinct correct answers per prompt worth having"
    )

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, v):
        if not v or any(not MIN_TEMPERATURE <= t <= 100 for t in v):
            raise ValueError(f"temperatures must be a non-empty list of values in {MIN_TEMPERATURE}..100")
        return v

    @field_validator("thresholds")
    @classmethod
    def _unit(cls, v):
        if not v or any(not 0 <= t <= 1 for t in v):
            raise ValueError("thresholds must be a non-empty list of rewards in [0, 1]")
        return v


class BudgetConfig(Strict):
    """Difficulty-aware sample budgets: the same total samples, spent where solve rates are low."""

    mode: Literal["uniform", "solve_rate"] = Field(
        "uniform",
        description="solve_rate: n per prompt inversely proportional to its difficulty's solve rate last round",
    )
    min_n: int = Field(2, ge=1, le=MAX_SAMPLES, description="solve_rate: fewest samples per prompt")
    max_n: int = Field(32, ge=1, le=MAX_SAMPLES, description="solve_rate: most samples per prompt")


class PromptBandConfig(Strict):
    """Prompts chosen by a measured solve rate, kept when it lies strictly inside (low, high),
    those nearest 0.5 first (the most reward variance for GRPO's group advantage).
    measure earlier: a prompt an earlier round sampled (its samples and verdicts, or a GRPO
    round's rollouts) comes back by its solve rate there, then fresh prompts fill the round's
    pool size; round 1 has no measurement and takes the fresh pool. measure probe: the parent
    policy samples each prompt of this round's fresh pool `probe_samples` times first."""

    measure: Literal["earlier", "probe"] = Field(
        "earlier",
        description="earlier: the solve rates earlier rounds recorded (free, but measured by an older "
        "policy); probe: the parent policy samples each fresh prompt probe_samples times (current, costs samples)",
    )
    probe_samples: int = Field(4, ge=2, le=MAX_SAMPLES, description="probe: samples per prompt")

    low: float = Field(0.0, ge=0, lt=1, description="keep prompts whose latest solve rate is above this")
    high: float = Field(1.0, gt=0, le=1, description="... and below this (0 < rate < 1: groups with a gradient)")
    fill: bool = Field(
        True, description="top up with fresh prompts to the task's pool size (false: the measured prompts alone)"
    )

    @model_validator(mode="after")
    def _band(self):
        if self.low >= self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g}): the band would keep no prompt")
        return self


class SamplingConfig(Strict):
    """How each round samples completions for its pool of prompts."""

    backend: Literal["hf", "vllm", "openai"] = Field(
        "hf",
        description="hf: transformers in process; vllm: vLLM's "
        "offline engine (sampling.vllm); openai: an OpenAI-compatible "
        "server (sampling.openai)",
    )
    n: int = Field(
        8, ge=1, le=MAX_SAMPLES, description="samples per prompt (sampling.budget may spread them by difficulty)"
    )
    temperature: float = Field(
        0.8, ge=MIN_TEMPERATURE, le=100, description="sampling temperature (sampling.balance picks its own per round)"
    )
    top_p: float = Field(
        1.0,
        gt=0,
        le=1,
        description="nucleus sampling: keep the most likely tokens up to this "
        "probability mass (1: off); also for evaluation's k samples",
    )
    max_new_tokens: int = Field(100, ge=1, le=MAX_TOKENS, description="most new tokens per completion")
    stop: tuple[str, ...] = Field((), description="cut each completion at the first of these strings")
    batch_size: int = Field(256, ge=1, le=MAX_BATCH, description="hf: sequences per forward batch")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "float32",
        description="hf backend only (vllm: vllm.dtype): "
        "weights' dtype for sampling and evaluation; auto: bfloat16 on a GPU that supports it "
        "or a CPU with AMX / AVX-512 BF16, float32 elsewhere (bfloat16 is ~1.7x faster with "
        "those instructions and far slower without)",
    )
    seed: int = Field(0, description="sampling seed; round k draws from its own stream (seed * 1000 + k)")
    shard_size: int = Field(
        256, ge=1, le=MAX_PROMPTS, description="prompts per shard; a restarted round skips finished shards"
    )
    isolate: bool | None = Field(
        None,
        description="generate in a subprocess so its memory is freed before "
        "training; default: on for vllm, off for hf and openai",
    )
    data_parallel: int = Field(
        1,
        ge=1,
        description="generation processes sharing the shards, each a whole engine "
        "on its own GPUs (vllm: tensor_parallel_size each); implies isolate",
    )
    openai: OpenAIConfig | None = Field(
        None, description="the OpenAI-compatible server of backend openai (required with it)"
    )
    vllm: VLLMConfig = Field(
        VLLMConfig(), description="vLLM engine settings, for sampling and evaluation with the vllm backend"
    )
    balance: BalanceConfig | None = Field(
        None, description="B-STaR: pick temperature and reward threshold per round on a dev slice"
    )
    budget: BudgetConfig = Field(
        BudgetConfig(), description="how many samples each prompt gets (uniform: sampling.n each)"
    )
    prompt_band: PromptBandConfig | None = Field(
        None,
        description="choose the round's prompts by the solve rate earlier rounds measured (e.g. 0 < rate < 1 "
        "for GRPO); None: a fresh pool every round",
    )

    @model_validator(mode="after")
    def _backend_settings(self):
        if self.backend == "openai" and self.openai is None:
            raise ValueError("backend 'openai' needs an openai: section (base_url, model)")
        if self.data_parallel > 1 and (self.backend == "openai" or self.isolate is False):
            raise ValueError(
                "sampling.data_parallel runs several engine processes: it needs backend hf or vllm "
                "and isolate not false (for a server, scale the server and raise max_concurrency)"
            )
        if self.backend == "vllm" and self.vllm.python and self.isolate is False:
            raise ValueError(
                "sampling.vllm.python runs the vllm job in another interpreter, in a subprocess: "
                "it needs isolate not false"
            )
        if self.budget.min_n > self.budget.max_n:
            raise ValueError(f"budget.min_n ({self.budget.min_n}) is above budget.max_n ({self.budget.max_n})")
        return self

    def isolated(self) -> bool:
        if self.isolate is None:
            return self.backend == "vllm" or self.data_parallel > 1
        return self.isolate
