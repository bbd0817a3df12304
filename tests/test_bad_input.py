"""Bad input at every edge: each case gets a clear error that names the problem, and
nothing is half-written. (One module on purpose: the list is the specification.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from selftaught.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
GSM = str(ROOT / "data" / "gsm8k" / "test.jsonl")

# --- the experiment config -------------------------------------------------------------------------

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


# --- datasets ----------------------------------------------------------------------------------------


def _task(tmp_path, name="gsm8k", rows=None, path=None, suffix=".jsonl", **source):
    from selftaught.config import TaskConfig
    from synth.tasks import make_task

    if rows is not None:
        path = tmp_path / f"rows{suffix}"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    src = {"path": str(path), **source}
    return make_task(TaskConfig(name=name, train=src, test=src))


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda t: _task(t, path=t / "nope.jsonl"), r"dataset file not found: .*nope.jsonl"),
        (lambda t: _task(t, rows=[{"q": "1+1", "answer": "2"}]), r"column\(s\) not found: question -> 'question'"),
        (lambda t: _task(t, rows=[]), r"rows.jsonl has no rows: it is empty or only whitespace"),
        (
            lambda t: _task(t, path=(t.joinpath("blank.csv").write_text("  \n\n \n"), t / "blank.csv")[1]),
            r"blank.csv has no rows: it is empty or only whitespace",
        ),
        (
            lambda t: _task(t, rows=[{"question": " ", "answer": "#### 2"}, {"question": "ok", "answer": ""}]),
            r"(?s)2 invalid row\(s\).*empty question: row\(s\) 0.*missing answer: row\(s\) 1",
        ),
        (
            lambda t: _task(
                t,
                rows=[
                    {"question": "a", "answer": "#### 1", "id": "x"},
                    {"question": "b", "answer": "#### 2", "id": "x"},
                ],
                id="id",
            ),
            r"duplicate id: row\(s\) 1",
        ),
        (lambda t: _task(t, path=t / "rows.txt"), r"unsupported dataset file type '.txt'"),
        (
            lambda t: _task(
                t, name="humaneval", rows=[{"task_id": "a", "prompt": "def f():", "canonical_solution": "x"}]
            ),
            r"column\(s\) \['entry_point', 'test'\] not found",
        ),
        (lambda t: _task(t, path="no-such-org/no-such-dataset"), r"cannot load dataset 'no-such-org/no-such-dataset'"),
    ],
    ids=[
        "missing file",
        "missing column",
        "empty dataset",
        "whitespace-only dataset",
        "invalid rows listed",
        "duplicate ids",
        "unsupported type",
        "code rows without tests",
        "hub dataset offline",
    ],
)
def test_dataset_errors(tmp_path, setup, message):
    from synth.sources import SourceError

    (tmp_path / "rows.txt").write_text("x")
    with pytest.raises(SourceError, match=message):
        setup(tmp_path).eval_set(set())


def test_dataset_that_is_not_utf8(tmp_path):
    from synth.sources import SourceError, read_source

    bad = tmp_path / "rows.jsonl"
    bad.write_bytes(b'{"question": "ok", "answer": "1"}\n{"question": "caf\xe9", "answer": "2"}\n')
    with pytest.raises(SourceError, match=r"not valid UTF-8 \(first bad byte on line 2"):
        read_source(str(bad))


# --- models, storage, round keys -----------------------------------------------------------------


def test_base_model_path_that_is_not_a_model(tmp_path):
    from synth.backends import BackendError, HFBackend
    from train.artifact import copy_model

    (tmp_path / "notamodel").mkdir()
    with pytest.raises(ValueError, match="is not a loadable model directory or hub id"):
        copy_model(tmp_path / "notamodel", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(BackendError, match="notamodel is not a loadable model directory"):
        HFBackend(str(tmp_path / "notamodel"))


def test_training_on_no_rows_or_from_a_non_model(tmp_path, tiny_model_dir):
    from train.sft import SFTSettings, train_sft

    with pytest.raises(ValueError, match="no training rows"):
        train_sft(tiny_model_dir, pl.DataFrame({"prompt": [], "completion": []}), tmp_path / "a", SFTSettings())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a loadable model directory"):
        train_sft(
            tmp_path / "empty", pl.DataFrame({"prompt": ["a"], "completion": ["b"]}), tmp_path / "b", SFTSettings()
        )


def test_storage_root_that_is_not_writable(tmp_path):
    from selftaught.store import ensure_writable

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match=r"storage root .*file/runs is not writable"):
        ensure_writable(blocker / "runs")


@pytest.mark.parametrize("key", ["round1", "r1", "R001", "r000"])
def test_bad_round_keys(key):
    from selftaught.round_keys import parent_key, round_index

    with pytest.raises(ValueError, match="round"):
        parent_key(key) if key != "r000" else __import__("selftaught.round_keys").round_keys.round_key(round_index(key))


def test_incomplete_checkpoint_is_skipped_not_loaded(tmp_path):
    from train.sft import _last_complete_checkpoint

    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-6").mkdir()
    (tmp_path / "checkpoint-6" / "model.safetensors").write_bytes(b"half")  # killed while saving
    assert _last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-3"
    assert not (tmp_path / "checkpoint-6").exists()


# --- tables and model outputs -------------------------------------------------------------------


def test_tables_are_validated_at_the_edges():
    from selftaught import schemas
    from synth.backends import SamplingParams
    from synth.sampling import to_samples

    with pytest.raises(schemas.SchemaError, match=r"missing column\(s\) \['prompt_id'"):
        schemas.validate(pl.DataFrame({"round": ["r001"]}), "samples")
    prompts = schemas.empty("prompts").vstack(
        pl.DataFrame(
            {
                "prompt_id": ["p"],
                "split": ["pool"],
                "round": ["r001"],
                "prompt": ["1+1"],
                "reference": ["2"],
                "target": [""],
                "difficulty": [1],
                "fields": [None],
            },
            schema=schemas.PROMPTS,
        )
    )
    with pytest.raises(RuntimeError, match="returned 1 samples for p, expected 2"):
        to_samples(prompts, [["only one"]], SamplingParams(n=2, temperature=1.0), "r001", "base", "", "hf")
    with pytest.raises(RuntimeError, match="answered 0 prompts, expected 1"):
        to_samples(prompts, [], SamplingParams(n=2, temperature=1.0), "r001", "base", "", "hf")


def test_a_verifier_that_raises_on_every_row_gives_unverifiable_rows():
    from filters.verifiers import verify
    from selftaught import schemas

    class Broken:
        name, version = "broken", "0"

        def check(self, prompt, completion, reference):
            raise KeyError("the verifier's own bug")

    prompts = pl.DataFrame({"prompt_id": ["a", "b"], "reference": ["1", "2"]})
    samples = schemas.empty("samples").vstack(
        pl.DataFrame(
            {
                "round": ["r001"] * 2,
                "prompt_id": ["a", "b"],
                "sample_idx": [0, 0],
                "policy_id": ["base"] * 2,
                "policy_hash": [""] * 2,
                "prompt": ["x"] * 2,
                "completion": ["y"] * 2,
                "backend": ["hf"] * 2,
                "temperature": [1.0] * 2,
                "top_p": [1.0] * 2,
                "max_new_tokens": [5] * 2,
                "seed": [0] * 2,
            },
            schema=schemas.SAMPLES,
        )
    )
    v = verify(Broken(), prompts, samples)
    assert v["verdict"].to_list() == ["unverifiable"] * 2
    assert all("verifier error: KeyError" in r for r in v["reason"])
    with pytest.raises(ValueError, match=r"1 sample prompt_id\(s\) have no prompt row"):
        verify(Broken(), prompts.head(1), samples)


# --- through the CLI: a clear message, exit 2 or 1, nothing written -------------------------------


def _cli(*args, home, cwd=None):
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_cli_bad_config_writes_nothing(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"storage_root: {tmp_path / 'store'}\nsampling: {{n: 0}}\n")
    out = _cli("run", "--config", str(cfg), home=tmp_path / "home")
    assert out.returncode == 2 and "sampling.n" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.slow
def test_cli_verifier_failing_every_row_stops_the_round_before_training(tmp_path):
    """The sandbox verifier on the arithmetic task cannot read any reference: every sample is
    unverifiable, the blocking check stops the round, and no training set or policy is written."""
    from tests.helpers import copy_config, make_tiny_config

    cfg = copy_config(make_tiny_config(tmp_path), tmp_path / "wrong.yaml", verification={"verifier": "sandbox"})
    out = _cli("run", "--config", str(cfg), "--rounds", "1", home=tmp_path / "home")
    assert out.returncode == 1
    assert "blocking check unverifiable_share on tiny/verdicts failed: 100.0% of samples unverifiable" in out.stderr
    store = tmp_path / "store"
    assert (store / "tables" / "verdicts" / "r001.parquet").is_file()
    assert not (store / "tables" / "training_set" / "r001.parquet").exists()
    assert not (store / "models" / "r001").exists()


def test_cli_step_failure_names_the_root_cause_in_one_line(tmp_path):
    """A step that fails on a bad model.base: the CLI's line is the exception at the bottom of
    Dagster's chain (here a file that is not a GGUF), not "Error occurred while executing op"."""
    from tests.helpers import copy_config, make_tiny_config

    fake = tmp_path / "weights.gguf"
    fake.write_text("not a model")
    cfg = copy_config(make_tiny_config(tmp_path), tmp_path / "gguf.yaml", model__base=str(fake))
    out = _cli("run", "--config", str(cfg), "--rounds", "1", home=tmp_path / "home")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"setup failed: base_model: train.gguf.BaseModelError: model.base '{fake}': {fake} is not "
        f"a GGUF file (it starts with b'not ', not b'GGUF') [traceback: "
    ), out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "Stack Trace" not in out.stderr
    log = Path(last.split("[traceback: ")[1].split(";")[0])
    assert "BaseModelError" in log.read_text() and "Stack Trace" in log.read_text()
    assert not (tmp_path / "store" / "models" / "base").exists()


@pytest.mark.slow
def test_cli_names_the_failed_step_not_a_check_that_only_warned(tmp_path):
    """On arithmetic rounds the verdict_audit check warns (the step check disagrees with the
    reference check on most correct samples). When training then fails (here: the tracking
    folder is a file), the line names the training error, not the warning, and prints no
    traceback; --debug prints Dagster's log with it."""
    from tests.helpers import copy_config, make_tiny_config

    (tmp_path / "not_a_folder").write_text("a file")
    cfg = copy_config(
        make_tiny_config(tmp_path),
        tmp_path / "tracking.yaml",
        operations__tracking__report_to=["tensorboard"],
        operations__tracking__dir=str(tmp_path / "not_a_folder"),
    )
    out = _cli("run", "--config", str(cfg), "--rounds", "1", home=tmp_path / "home")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"r001 failed: policy: FileExistsError: [Errno 17] File exists: '{tmp_path / 'not_a_folder'}' [traceback: "
    ), out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "Stack Trace" not in out.stderr and len(out.stderr.splitlines()) < 40
    import dagster as dg

    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:  # the check did warn
        checks = [
            r.event_log_entry.dagster_event.event_specific_data
            for r in instance.get_records_for_run(
                instance.get_runs(limit=1)[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            ).records
        ]
    assert any(not c.passed and c.severity == dg.AssetCheckSeverity.WARN for c in checks), checks

    debug = _cli("run", "--config", str(cfg), "--rounds", "1", "--debug", home=tmp_path / "home")
    assert debug.returncode == 1 and "Stack Trace" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("r001 failed: policy: FileExistsError")


def test_cli_usage_errors_are_one_line(tmp_path):
    """No traceback for a round count past the limit, a Dagster home that is a file, or an
    empty config file (which used to validate silently as the demo)."""
    out = _cli("run", "--rounds", "99999999999999999999", home=tmp_path / "home")
    assert out.returncode == 2 and "--rounds: must be 1..10,000, got 99999999999999999999" in out.stderr
    (tmp_path / "a_file").write_text("x")
    out = _cli("status", "--dagster-home", str(tmp_path / "a_file"), home=tmp_path / "home")
    assert out.returncode == 2 and out.stderr.strip() == (
        f"error: the Dagster home {tmp_path / 'a_file'} (--dagster-home or $DAGSTER_HOME) is a file, not a folder"
    )
    (tmp_path / "empty.yaml").write_text("")
    out = _cli("validate", "--config", str(tmp_path / "empty.yaml"), home=tmp_path / "home")
    assert out.returncode == 2 and out.stderr.strip().endswith(
        "is empty: write at least `extends: demo` (or the "
        "settings you mean); an empty file is more likely a "
        "mistake than the demo"
    )
    for o in (out,):
        assert "Traceback" not in o.stderr
