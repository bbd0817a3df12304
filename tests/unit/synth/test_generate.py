"""Sharded, resumable generation in process (synth/generate.py) and the generation config.
(Generation subprocesses and the OpenAI-compatible backend against a server:
tests/e2e/test_generation.py.)"""

import dataclasses

import pytest

from synth.generate import run, shard_path
from tests.helpers import GENERATION_PARAMS as PARAMS
from tests.helpers import generation_job as _job
from tests.helpers import generation_prompts as _prompts


def test_rerun_reuses_finished_shards_and_changed_job_discards_them(tiny_model_dir, tmp_path):
    prompts = _prompts(10)
    job = _job(tiny_model_dir, tmp_path / "gen")
    first = run(job, prompts)
    assert (
        first.height == 10 * PARAMS.n
        and first["prompt_id"].unique(maintain_order=True).to_list() == prompts["prompt_id"].to_list()
    )
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "gen").glob("shard-*.parquet")}
    assert len(stamps) == 3  # 4 + 4 + 2 prompts
    again = run(job, prompts)
    assert again.equals(first)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "gen").glob("shard-*.parquet")}

    hotter = _job(tiny_model_dir, tmp_path / "gen", params=dataclasses.replace(PARAMS, temperature=1.3))
    changed = run(hotter, prompts)
    assert changed["temperature"].unique().to_list() == [1.3]
    assert not changed["completion"].equals(first["completion"])


def test_seeds_depend_on_the_shard_not_on_what_ran_before(tiny_model_dir, tmp_path):
    prompts = _prompts(8)
    whole = run(_job(tiny_model_dir, tmp_path / "a"), prompts)
    # Only the second shard, in a fresh process-state: same rows as in the whole run.
    job = _job(tiny_model_dir, tmp_path / "b")
    run(job, prompts)
    shard_path(tmp_path / "b", 0).unlink()
    assert run(job, prompts).equals(whole)


def test_more_generation_processes_than_gpus_is_a_clear_error(monkeypatch):
    from synth.generate import worker_envs

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    with pytest.raises(RuntimeError, match="2 generation processes x 2 GPUs need 4 GPUs; 3 are visible"):
        worker_envs(2, 2)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in worker_envs(3, 1)] == ["0", "1", "2"]


@pytest.mark.parametrize(
    "sampling,training,message",
    [
        ({"backend": "openai"}, {}, "needs an openai: section"),
        ({"backend": "openai", "openai": {"base_url": "127.0.0.1:8000/v1", "model": "m"}}, {}, "http://"),
        (
            {"backend": "openai", "openai": {"base_url": "http://h/v1", "model": "m", "api_key": "sk-x"}},
            {},
            "openai.api_key: unknown key",
        ),
        ({"backend": "vllm", "vllm": {"max_lora_rank": 8}}, {"method": "lora", "lora": {"r": 16}}, "max_lora_rank"),
        ({"backend": "tgi"}, {}, "sampling.backend"),
        ({"shard_size": 0}, {}, "sampling.shard_size"),
        ({"data_parallel": 2, "isolate": False}, {}, "data_parallel runs several engine processes"),
    ],
)
def test_generation_config_errors_name_the_key(sampling, training, message):
    from selftaught.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=message):
        parse_config({"sampling": sampling, "training": training})


def test_backend_defaults():
    from selftaught.config import parse_config

    assert parse_config({"sampling": {"backend": "vllm"}}).sampling.isolated()
    assert not parse_config({}).sampling.isolated()
    assert parse_config({"sampling": {"data_parallel": 2}}).sampling.isolated()
    teacher = parse_config({"sampling": {"backend": "openai", "openai": {"base_url": "http://h:1/v1/", "model": "m"}}})
    assert teacher.eval_backend() == "hf" and teacher.sampling.openai.base_url == "http://h:1/v1"
