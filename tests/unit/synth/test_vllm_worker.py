"""The vllm job's interpreter (sampling.vllm.python) and vLLM-CPU's engine settings, without
vLLM: the key stays out of the round hash, a missing vLLM is one early error line, and the
OpenMP cores and KV cache come from the machine unless the user set them. (A real job through
.venv-vllm: tests/e2e/test_vllm_worker.py.)"""

import os
import sys

import pytest

from selftaught.config import ConfigError, parse_config
from synth import backends, generate
from synth.backends import BackendError
from tests.helpers import ROOT, generation_job, generation_prompts


def _vllm_job(tmp_path, **options):
    return generation_job(tmp_path / "model", tmp_path / "gen", backend="vllm", options=options)


def test_the_interpreter_is_not_in_the_round_hash():
    plain = parse_config({"sampling": {"backend": "vllm"}})
    elsewhere = parse_config({"sampling": {"backend": "vllm", "vllm": {"python": "/opt/vllm-cpu/bin/python"}}})
    assert elsewhere.sampling.vllm.python == "/opt/vllm-cpu/bin/python"
    assert elsewhere.round_hash() == plain.round_hash() and elsewhere.section_hash() == plain.section_hash()


def test_the_interpreter_needs_an_isolated_job():
    with pytest.raises(ConfigError, match="sampling.vllm.python runs the vllm job in another interpreter"):
        parse_config({"sampling": {"backend": "vllm", "isolate": False, "vllm": {"python": "x/bin/python"}}})


def test_without_vllm_and_without_an_interpreter_the_job_stops_before_it_starts(tmp_path, monkeypatch):
    real = generate.importlib.util.find_spec
    monkeypatch.setattr(generate.importlib.util, "find_spec", lambda name: None if name == "vllm" else real(name))
    job = _vllm_job(tmp_path)
    for call in (generate.run, generate.run_isolated):
        with pytest.raises(BackendError, match=r"set sampling\.vllm\.python .*make \.venv-vllm/\.installed") as err:
            call(job, generation_prompts(4))
        assert "\n" not in str(err.value)
    assert not (tmp_path / "gen").exists()


def test_the_interpreter_is_resolved_against_the_project_root(tmp_path):
    assert generate.worker_python(generation_job(tmp_path, tmp_path / "gen")) == sys.executable  # hf: this one
    assert generate.worker_python(_vllm_job(tmp_path, python=sys.executable)) == sys.executable
    with pytest.raises(BackendError, match=f"sampling.vllm.python: {ROOT}/no-venv/bin/python is not an executable"):
        generate.worker_python(_vllm_job(tmp_path, python="no-venv/bin/python"))


def test_the_interpreter_is_not_a_backend_option(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(generate, "load_backend", lambda kind, model_dir, **options: seen.update(options))
    generate.make_backend(_vllm_job(tmp_path, python=".venv-vllm/bin/python", dtype="float32"))
    assert seen == {"dtype": "float32"}


def test_threads_are_bound_to_the_usable_cores_and_the_users_settings_win(monkeypatch):
    assert backends.cpu_bind([0, 1]) == "0,1" and backends.cpu_bind([2, 3, 5, 7], 2) == "2,3|5,7"
    with pytest.raises(BackendError, match="tensor_parallel_size 3 needs as many CPU cores"):
        backends.cpu_bind([0, 1], 3)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "7")
    with backends.cpu_env():
        assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "0,1,2,3" and os.environ["VLLM_CPU_KVCACHE_SPACE"] == "7"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ and os.environ["VLLM_CPU_KVCACHE_SPACE"] == "7"
    assert 1 <= backends.kv_cache_gib() <= backends.KV_CACHE_GIB


def test_cpu_generation_processes_get_their_own_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(generate, "visible_gpus", lambda: [])
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    assert [e["VLLM_CPU_OMP_THREADS_BIND"] for e in generate.worker_envs(2, 1)] == ["0,1", "2,3"]
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0|1")  # the user's binding is passed on as it is
    assert [e["VLLM_CPU_OMP_THREADS_BIND"] for e in generate.worker_envs(2, 1)] == ["0|1", "0|1"]
