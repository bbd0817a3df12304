"""The pipeline's vLLM job from this environment (.venv, where vllm is not importable) through
`sampling.vllm.python: .venv-vllm/bin/python`, the CPU build's own environment: the config's
options as the samples step passes them, a sharded job in that interpreter, its rows
reproducible, and a resumed job's shards equal to an uninterrupted run's.

Skipped without .venv-vllm (tests/allowed_skips.py); `make test` builds it first. The prompts
share a few-shot prefix longer than a KV block (128 tokens on the CPU), which the prefix cache
keeps, and a shard's prompts exceed a step's token budget (4,096): with vLLM's default chunked
prefill, its seeded requests would fail ("CPU Generator does not use offset").
"""

import os

import pytest

from selftaught.config import parse_config
from tests.helpers import ROOT, VLLM_ENGINE, vllm_tiny_model

VLLM_PYTHON = ".venv-vllm/bin/python"  # relative to the project root, as a config names it

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (ROOT / ".venv-vllm" / ".installed").is_file(),
        reason="no .venv-vllm (vLLM's CPU build, which cannot share .venv): make .venv-vllm/.installed builds it",
    ),
]

FEW_SHOT = "Q: 12+34=? A: 46. " * 9  # 162 tokens of the tiny (character) tokenizer
ENGINE = {**VLLM_ENGINE, "max_model_len": 256}


def _prompts():
    """180 prompts of ~175 tokens: a shard of 60 with n=4 is 240 requests, ~42,000 prompt tokens."""
    import polars as pl

    from synth.arithmetic import make_problems

    df = make_problems({2: 180}, seed=5, round_key="r001")
    return df.with_columns(prompt=pl.lit(FEW_SHOT) + pl.col("prompt"))


def _job(base, out_dir):
    """The samples step's job for a config with sampling.vllm.python (assets/generation.py's options)."""
    from assets.generation import backend_options
    from synth.backends import SamplingParams
    from synth.generate import GenerationJob

    cfg = parse_config({"sampling": {"backend": "vllm", "seed": 4, "vllm": {**ENGINE, "python": VLLM_PYTHON}}})
    return GenerationJob(
        backend="vllm",
        model_dir=str(base),
        params=SamplingParams(n=4, temperature=0.9, max_new_tokens=16, seed=4),
        out_dir=str(out_dir),
        round="r001",
        policy_id="base",
        policy_hash="h",
        shard_size=60,
        options=backend_options(cfg, "vllm", cfg.sampling.batch_size),
    )


def test_the_vllm_job_runs_in_the_configured_interpreter_and_resumes_to_the_same_rows(tmp_path, monkeypatch):
    from synth.generate import run_isolated, shard_path

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))  # GiB; ample here
    base = vllm_tiny_model(tmp_path / "base", max_positions=256)
    job, prompts = _job(base, tmp_path / "gen"), _prompts()
    lines: list[str] = []
    first = run_isolated(job, prompts, lines.append)
    assert first.height == 180 * 4 and set(first["backend"]) == {"vllm"}
    assert len(set(first["completion"])) > 600, "seeded sampling gave repeated completions"
    assert [line for line in lines if "written" in line][-1].startswith("generation: shard 3/3 written")

    # A killed job: shards 2 and 3 missing. The rerun's engine starts at shard 2 (the whole run's
    # had shard 1 in its prefix cache before it) and must write the same rows.
    kept = shard_path(tmp_path / "gen", 0).stat().st_mtime_ns
    for i in (1, 2):
        shard_path(tmp_path / "gen", i).unlink()
    resumed = run_isolated(job, prompts, lines.append)
    assert shard_path(tmp_path / "gen", 0).stat().st_mtime_ns == kept
    assert resumed.equals(first)
