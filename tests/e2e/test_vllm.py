"""The real vLLM path, on the CPU build of vLLM (`make test-vllm`; skipped without vllm).

Checks the round's policy served as a LoRARequest on its base model against the
merged weights in HF transformers, seeded sampling, stop strings, and a sharded
generation job in an isolated subprocess.
"""

import dataclasses
import os

import pytest

pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

from synth.backends import HFBackend, SamplingParams, VLLMBackend  # noqa: E402
from synth.generate import GenerationJob, run_isolated  # noqa: E402
from tests.helpers import VLLM_ENGINE as ENGINE  # noqa: E402
from tests.helpers import generation_prompts as _prompts  # noqa: E402
from tests.helpers import vllm_tiny_model  # noqa: E402

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; more than the tests need


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """A tiny base (vLLM's CPU kernels need head_dim >= 32) and a LoRA adapter with non-zero weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("vllm")
    base = vllm_tiny_model(root / "base")
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(
            r=8,
            lora_alpha=16,
            init_lora_weights=False,
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        ),
    )
    model.save_pretrained(root / "adapter")
    model.merge_and_unload().save_pretrained(root / "merged")
    AutoTokenizer.from_pretrained(base).save_pretrained(root / "merged")
    return base, root / "adapter", root / "merged"


@pytest.fixture(scope="module")
def engine(policy):
    base, adapter, _ = policy
    backend = VLLMBackend(str(base), adapter_dir=str(adapter), **ENGINE)
    yield backend
    backend.close()  # while pytest's streams are still open for vLLM's shutdown logs


def test_lora_request_on_the_base_equals_the_merged_policy(engine, policy):
    prompts = _prompts(12)["prompt"].to_list()
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=16)
    got = engine.generate(prompts, greedy)
    want = HFBackend(str(policy[2])).generate(prompts, greedy)
    same = sum(g == w for g, w in zip(got, want))
    assert same >= 11, f"only {same}/12 greedy completions agree with the merged weights"
    base_only = HFBackend(str(policy[0])).generate(prompts, greedy)
    assert sum(g == b for g, b in zip(got, base_only)) <= 2, "the adapter made no difference"


def test_seeded_sampling_is_reproducible_and_stops(engine):
    prompts = _prompts(6)["prompt"].to_list()
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=24, seed=5)
    first = engine.generate(prompts, params)
    assert all(len(outs) == 4 for outs in first) and len({t for outs in first for t in outs}) > 12
    assert engine.generate(prompts, params) == first
    assert engine.generate(prompts, dataclasses.replace(params, seed=6)) != first
    stopped = engine.generate(prompts, dataclasses.replace(params, stop=("a", "e")))
    assert all("a" not in t and "e" not in t for outs in stopped for t in outs)


def test_generation_job_in_a_subprocess(policy, tmp_path):
    base, adapter, _ = policy
    job = GenerationJob(
        backend="vllm",
        model_dir=str(base),
        adapter_dir=str(adapter),
        params=SamplingParams(n=2, temperature=0.8, max_new_tokens=16, seed=1),
        out_dir=str(tmp_path / "gen"),
        round="r001",
        policy_id="r001",
        policy_hash="h",
        shard_size=5,
        options=ENGINE,
    )
    lines = []
    df = run_isolated(job, _prompts(12), lines.append)
    assert df.height == 24 and set(df["backend"]) == {"vllm"}
    assert [line for line in lines if "written" in line][-1].startswith("generation: shard 3/3 written")
