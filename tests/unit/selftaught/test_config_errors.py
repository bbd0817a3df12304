"""Bad config values, each a clear error that names the problem: keys, types and ranges (the list
below is the specification), config files, cron strings, extends chains, non-finite and
unbounded values, duplicate YAML keys."""

import pytest

from selftaught.config import ConfigError, load_config, parse_config
from tests.helpers import ROOT

GSM = str(ROOT / "data" / "gsm8k" / "test.jsonl")


CONFIG_CASES = [
    ("unknown top-level key", {"rounds": 3}, r"rounds: unknown key"),
    ("unknown nested key", {"sampling": {"temprature": 0.7}}, r"sampling.temprature: unknown key"),
    ("wrong type", {"sampling": {"n": "eight"}}, r"sampling.n: .*integer.*'eight'"),
    ("out of range", {"sampling": {"n": 0}}, r"sampling.n: .*greater than or equal to 1"),
    ("not one of the choices", {"training": {"method": "qlora"}}, r"training.method: .*'full' or 'lora'"),
    ("temperature zero", {"sampling": {"temperature": 0}}, r"sampling.temperature"),
    ("top_p above 1", {"sampling": {"top_p": 1.5}}, r"sampling.top_p"),
    ("bad experiment name", {"name": "my run"}, r"name: String should match pattern"),
    ("difficulty out of range", {"task": {"warm_start": {13: 5}}}, r"difficulty .* must be 1..12"),
    ("negative count", {"task": {"pool": {3: -1}}}, r"count for difficulty 3 must be 0..1,000,000, got -1"),
    ("frontier without eval problems", {"task": {"frontier": 7}}, r"frontier difficulty 7 has no eval problems"),
    ("empty pool", {"task": {"pool": {3: 0}}}, r"pool is empty"),
    ("dataset task without sources", {"task": {"name": "gsm8k"}}, r"task 'gsm8k' needs train and test"),
    (
        "template without {question}",
        {"task": {"name": "gsm8k", "train": {"path": GSM}, "test": {"path": GSM}, "template": "Q:"}},
        r"template must contain \{question\}",
    ),
    (
        "chat template on the tiny model",
        {"task": {"name": "gsm8k", "train": {"path": GSM}, "test": {"path": GSM}, "chat_template": True}},
        r"chat_template needs model.base",
    ),
    (
        "chat task on the tiny model",
        {"task": {"name": "list_max", "chat_template": True, "pool": {4: 8}, "eval": {4: 8}, "warm_start": {4: 2}}},
        r"chat_template needs model.base",
    ),
    (
        "chat task frontier not evaluated",
        {"task": {"name": "story", "pool": {2: 8}, "eval": {2: 8}, "frontier": 3}},
        r"frontier difficulty 3 has no eval problems",
    ),
    (
        "steps required without a step check",
        {"task": {"name": "story", "pool": {2: 8}, "eval": {2: 8}}, "selection": {"require_rationale": True}},
        r"require_rationale",
    ),
    ("template on the arithmetic task", {"task": {"template": "{question}?"}}, r"does not apply to the arithmetic"),
    (
        "list_max with one-number lists",
        {"task": {"name": "list_max", "pool": {4: 8}, "eval": {4: 8}}},
        r"list_max levels are list lengths: 2 or more \(task.warm_start has \[1\]",
    ),
    ("bad sampling dtype", {"sampling": {"dtype": "float16"}}, r"sampling.dtype: .*'float32' or 'bfloat16'"),
    ("openai backend without settings", {"sampling": {"backend": "openai"}}, r"needs an openai: section"),
    (
        "server url without scheme",
        {"sampling": {"backend": "openai", "openai": {"base_url": "localhost:8000", "model": "m"}}},
        r"http://",
    ),
    (
        "api key in the config",
        {"sampling": {"backend": "openai", "openai": {"base_url": "http://h/v1", "model": "m", "api_key": "sk-1"}}},
        r"openai.api_key: unknown key",
    ),
    (
        "LoRA rank above vLLM's limit",
        {
            "sampling": {"backend": "vllm", "vllm": {"max_lora_rank": 8}},
            "training": {"method": "lora", "lora": {"r": 32}},
        },
        r"max_lora_rank",
    ),
    ("cron with 3 fields", {"operations": {"schedule_cron": "0 2 *"}}, r"schedule_cron must have 5 fields"),
    ("unverifiable bound above 1", {"verification": {"max_unverifiable_share": 2}}, r"max_unverifiable_share"),
    ("unknown verifier", {"verification": {"verifier": "gpt-judge"}}, r"verification.verifier"),
    ("top level is a list", ["name"], r"expected a mapping at the top"),
    # training.trl passes fields to TRL: finite, bounded, nothing that reaches the network
    ("pass-through nan", {"training": {"trl": {"max_grad_norm": float("nan")}}}, r"max_grad_norm: nan is not a finite"),
    (
        "pass-through nested inf",
        {"training": {"trl": {"lr_scheduler_kwargs": {"min_lr": float("inf")}}}},
        r"lr_scheduler_kwargs.min_lr: inf is not a finite",
    ),
    (
        "pass-through padding to 0 tokens",
        {"training": {"trl": {"pad_to_multiple_of": 0}}},
        r"pad_to_multiple_of: 0 is outside 1..4096",
    ),
    (
        "pass-through absurd magnitude",
        {"training": {"trl": {"neftune_noise_alpha": 1e30}}},
        r"neftune_noise_alpha: 1e\+30 is outside 0..100",
    ),
    (
        "pass-through unlisted float",
        {"training": {"trl": {"adam_beta2": 0.9, "router_aux_loss_coef": 1e12}}},
        r"router_aux_loss_coef: 1000000000000.0 is beyond",
    ),
    ("pass-through uploads", {"training": {"trl": {"push_to_hub": True}}}, r"push_to_hub: not passed through .*export"),
    (
        "pass-through hub fields",
        {"training": {"trl": {"hub_model_id": "me/model"}}},
        r"hub_model_id: not passed through",
    ),
    ("pass-through remote code", {"training": {"trl": {"trust_remote_code": True}}}, r"trust_remote_code: not passed"),
    (
        "pass-through unbounded resources",
        {"training": {"trl": {"dataloader_num_workers": 1000, "gradient_accumulation_steps": 10**9}}},
        r"dataloader_num_workers: 1000 is outside 0..32; gradient_accumulation_steps: 1000000000 is outside 1..1024",
    ),
    (
        "pass-through remote server",
        {"training": {"objective": "grpo", "trl": {"vllm_server_host": "10.0.0.1"}}},
        r"vllm_server_host: not passed through",
    ),
    ("temperature that underflows", {"sampling": {"temperature": 1e-300}}, r"sampling.temperature: .*0.01"),
    ("eval temperature that underflows", {"evaluation": {"temperature": 1e-300}}, r"evaluation.temperature"),
    (
        "grpo temperature that underflows",
        {"training": {"objective": "grpo", "grpo": {"temperature": 1e-300}}},
        r"training.grpo.temperature",
    ),
    (
        "balance temperature that underflows",
        {"sampling": {"balance": {"temperatures": [1e-300]}}},
        r"temperatures must be .* 0.01..100",
    ),
    ("weight decay unbounded", {"training": {"weight_decay": 1e9}}, r"training.weight_decay"),
    ("cron minute out of range", {"operations": {"schedule_cron": "99 2 * * *"}}, r"minute field '99' is outside 0-59"),
    ("cron word", {"operations": {"schedule_cron": "0 2 * * someday"}}, r"weekday field 'someday' is not"),
    ("cron zero step", {"operations": {"schedule_cron": "*/0 2 * * *"}}, r"step '0'"),
    ("unknown timezone", {"operations": {"timezone": "Mars/Olympus"}}, r"not an IANA time zone"),
    ("keys that read the same", {"task": {"pool": {1: 20, "1": 1000}}}, r"task.pool: .*keys 1 and '1' are the same"),
]


@pytest.mark.parametrize("data,message", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_config_errors(data, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(data, "bad.yaml")
    assert str(err.value).startswith("invalid experiment config bad.yaml")


@pytest.mark.parametrize(
    "content,message",
    [
        (None, r"experiment config not found"),
        (b"name: [unclosed\n", r"is not valid YAML"),
        (b"name: caf\xe9\n", r"is not valid YAML"),  # not UTF-8
        (b"", r"is empty: write at least `extends: demo`"),
        (b"# only a comment\n", r"is empty"),
        (
            (
                "a: &a [x, x, x, x, x, x, x, x, x]\n"
                + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
            ).encode(),
            r"more than 100,000 values once its aliases",
        ),
        (b"a: &a [1, *a]\n", r"an alias refers to itself"),
        (("x: " + "[" * 40 + "]" * 40 + "\n").encode(), r"nested deeper than 32 levels"),
        (b"name: x\n" + b"#" * (1 << 20) + b"\n", r"larger than 1 MiB"),
    ],
    ids=[
        "missing file",
        "YAML syntax error",
        "not UTF-8",
        "empty file",
        "only a comment",
        "alias bomb",
        "recursive alias",
        "deep nesting",
        "huge file",
    ],
)
def test_config_file_errors(tmp_path, content, message):
    path = tmp_path / "exp.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_pass_through_accepts_sane_values():
    cfg = parse_config(
        {
            "training": {
                "trl": {
                    "gradient_accumulation_steps": 4,
                    "max_grad_norm": 0.5,
                    "lr_scheduler_type": "cosine",
                    "push_to_hub": False,
                    "lr_scheduler_kwargs": {"num_cycles": 0.5},
                }
            },
            "operations": {"schedule_cron": "*/15 0-6 1,15 jan-mar mon-fri", "timezone": "Europe/Paris"},
        }
    )
    assert cfg.training.trl["gradient_accumulation_steps"] == 4


@pytest.mark.parametrize("cron", ["0 2 * * *", "*/15 0-6 1,15 jan-mar mon-fri", "59 23 31 12 7", "0 0 1-7/2 * 0"])
def test_a_cron_the_config_accepts_dagster_accepts(cron):
    from dagster._utils.schedules import is_valid_cron_string

    parse_config({"operations": {"schedule_cron": cron}})
    assert is_valid_cron_string(cron)


def test_extends_chain_is_bounded_and_set_cannot_swap_the_parent(tmp_path):
    from selftaught.config import with_overrides

    for i in range(1, 200):
        (tmp_path / f"c{i}.yaml").write_text(f"extends: c{i + 1}.yaml\n")
    (tmp_path / "c200.yaml").write_text("extends: demo\n")
    with pytest.raises(ConfigError, match=r"c1.yaml: its extends chain is longer than 32 files"):
        load_config(tmp_path / "c1.yaml")
    load_config(tmp_path / "c180.yaml")  # 21 files and the demo preset
    with pytest.raises(ConfigError, match=r"--set extends=grpo: extends is the config's parent"):
        with_overrides(tmp_path / "c180.yaml", ["extends=grpo"], tmp_path / "sets")


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("training", "learning_rate", float("inf")),
        ("sampling", "temperature", float("nan")),
        ("training", "steps_growth", float("inf")),
        ("verification", "judge", {"threshold": float("-inf")}),
    ],
)
def test_non_finite_numbers_are_config_errors(section, key, value):
    with pytest.raises(ConfigError, match="finite number"):
        parse_config({section: {key: value}})


def test_yaml_inf_in_a_file_names_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learning_rate: .inf\n")
    with pytest.raises(ConfigError, match=r"training.learning_rate: Input should be a finite number \(got inf\)"):
        load_config(path)


def test_duplicate_keys_name_the_key_and_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: a\nsampling:\n  n: 4\n  temperature: 0.5\n  n: 8\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'n' on lines 3 and 5"):
        load_config(path)
    path.write_text("sampling:\n  n: 4\ntraining:\n  max_steps: 3\nsampling:\n  n: 8\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'sampling' on lines 1 and 5"):
        load_config(path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"storage_root": ""}, "storage_root: Value error, must name a folder"),
        ({"storage_root": "   "}, "storage_root: Value error, must name a folder"),
        ({"task": {"pool": {3: 10**12}}}, "count for difficulty 3 must be 0..1,000,000"),
        ({"training": {"steps_growth": 1e300}}, "training.steps_growth: Input should be less than or equal to 10"),
        ({"sampling": {"n": 10**12}}, "sampling.n: Input should be less than or equal to 4096"),
        ({"training": {"max_steps": 10**9}}, "training.max_steps: Input should be less than or equal to 10000000"),
        (
            {"task": {"pool": {3: 1_000_000, 4: 1_000_000}}, "sampling": {"n": 64}},
            "a round would generate 128,000,000 samples",
        ),
        (
            {"training": {"max_steps": 5_000_000, "steps_growth": 3.0}, "max_rounds": 4},
            "round 4 would train 135,000,000 steps",
        ),
    ],
)
def test_unbounded_work_is_a_config_error(changes, message):
    with pytest.raises(ConfigError) as err:
        parse_config(changes)
    assert message in str(err.value)


def test_bad_cron_is_a_config_error():
    from selftaught.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="schedule_cron must have 5 fields"):
        parse_config({"operations": {"schedule_cron": "nightly"}})
