"""The tests' helpers, in one module: paths, the tiny experiment's config, a Dagster home of its
own, servers on free loopback ports (`selftaught ui`, moto's S3), rounds run in process, and the
builders that a subject's unit and end-to-end tests share. Every test imports them one way,
`from tests.helpers import ...`; fixtures and pytest hooks are in tests/conftest.py."""

import json
import os
import signal
import textwrap
from contextlib import contextmanager
from pathlib import Path

from synth.backends import SamplingParams

ROOT = Path(__file__).resolve().parent.parent  # the repository
TESTS = ROOT / "tests"
TINY_CONFIG = TESTS / "configs" / "tiny.yaml"


# ---- configs -------------------------------------------------------------------------------------


def make_tiny_config(folder: Path) -> Path:
    """The tiny experiment config with its storage root inside `folder`."""
    import yaml

    data = yaml.safe_load(TINY_CONFIG.read_text())
    data["storage_root"] = str(folder / "store")
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def copy_config(src: Path, dst: Path, **changes) -> Path:
    import yaml

    data = yaml.safe_load(src.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    dst.write_text(yaml.safe_dump(data))
    return dst


def tiny_config_in(folder: Path, **changes) -> Path:
    """The tiny config as folder/tiny.yaml with its store in folder/store, and `changes`
    (copy_config's dotted__keys)."""
    return copy_config(TINY_CONFIG, folder / "tiny.yaml", storage_root=str(folder / "store"), **changes)


def dpo_lora_config(folder: Path, max_rounds: int) -> Path:
    """The tiny experiment as LoRA preference (RPO) rounds against the previous policy."""
    from selftaught.config import load_config

    tiny = load_config(make_tiny_config(folder))
    training = {
        **tiny.training.model_dump(),
        "objective": "dpo",
        "method": "lora",
        "max_steps": 3,
        "learning_rate": 1e-3,
        "lora": {"r": 4, "alpha": 8},
        "dpo": {"beta": 0.1, "rpo_alpha": 1.0, "reference": "previous", "max_pairs_per_prompt": 2},
    }
    return copy_config(
        make_tiny_config(folder),
        folder / "rpo_lora.yaml",
        max_rounds=max_rounds,
        training=training,
        sampling={"n": 8, "temperature": 1.0, "max_new_tokens": 40, "batch_size": 160},
    )


def write_dedented(path: Path, text: str) -> Path:
    """`text`, dedented, written to `path` (its folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# ---- Dagster ---------------------------------------------------------------------------------------


@contextmanager
def fresh_dagster_home(folder: Path):
    """A DAGSTER_HOME of its own (with the project's dagster.yaml) for the duration."""
    from pipelines.instance import dagster_home as prepare

    old = os.environ.get("DAGSTER_HOME")
    try:
        yield prepare(str(folder / "dagster_home"))
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old


def round_asset_names() -> list[str]:
    """A round's assets, in the order assets/rounds.py lists them (its ROUND_ASSETS)."""
    from assets.rounds import ROUND_ASSETS

    return [a.key.path[-1] for a in ROUND_ASSETS]


def run_rounds(config: Path, folder: Path, rounds: int = 1):
    """Setup and rounds r001.. of `config` in process, in a Dagster home of its own, each
    asserted successful. Returns (store, {(asset, round): metadata}, {round: log text})."""
    import dagster as dg

    from pipelines.build import build_definitions
    from pipelines.keys import key_prefix
    from selftaught.config import load_config

    keys = [f"r{i:03d}" for i in range(1, rounds + 1)]
    prefix = key_prefix(load_config(config).name)
    meta, logs = {}, {}
    with fresh_dagster_home(folder), dg.DagsterInstance.get() as instance:
        defs = build_definitions(config)
        assert defs.resolve_job_def("setup").execute_in_process(instance=instance).success
        instance.add_dynamic_partitions("rounds", keys)
        for key in keys:
            result = defs.resolve_job_def("round").execute_in_process(
                instance=instance, partition_key=key, raise_on_error=False
            )
            assert result.success, [e.message for e in result.all_events if e.is_failure]
            logs[key] = " ".join(r.user_message for r in instance.all_logs(result.run_id))
            for asset in round_asset_names():
                recs = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey([prefix, asset]), asset_partitions=[key]), limit=1
                ).records
                if recs:
                    meta[(asset, key)] = {k: v.value for k, v in recs[0].asset_materialization.metadata.items()}
    return defs.resources["experiment"].store, meta, logs


def kill_when(cmd: list[str], env: dict, ready, timeout: float) -> str:
    """Start `cmd` in a process group of its own, kill -9 the group once `ready()` is true, and
    return its output; fails if it exits (or `timeout` passes) before it was killed."""
    import subprocess
    import time

    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    out = proc.communicate()[0]
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    return out


# ---- servers on 127.0.0.1 -------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(cmd: list[str], probe: str, what, timeout: float, **popen):
    """Start `cmd` in its own process group and poll `probe` until it answers; returns the
    process. `what()` describes a server that died or never answered. Stop it with
    os.killpg(proc.pid, signal.SIGTERM)."""
    import subprocess
    import time
    import urllib.request

    proc = subprocess.Popen(cmd, start_new_session=True, **popen)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(probe, timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(what(proc)) from None
            time.sleep(0.3)


def start_ui(config, env: dict, timeout: float = 180, **popen):
    """`selftaught ui` on a free 127.0.0.1 port; returns (proc, base url) once /server_info answers."""
    import subprocess
    import sys

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(
        [sys.executable, "-m", "pipelines.cli", "ui", "--config", str(config), "--port", str(port)],
        f"{url}/server_info",
        lambda p: f"dagster dev did not answer on {url} (exit code {p.poll()})",
        timeout,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **popen,
    )
    return proc, url


# the bucket the `s3` fixture (tests/conftest.py) makes on moto's server
S3_BUCKET = "selftaught-test"


def start_moto(log: Path, timeout: float = 60):
    """moto's S3 server on a free 127.0.0.1 port; returns (proc, endpoint URL) once it answers."""
    import subprocess
    import sys

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = start_server(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            f"{url}/moto-api/",
            lambda p: f"moto server did not start: {log.read_text()[-2000:]}",
            timeout,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, url


# ---- generation jobs (tests/unit/synth/test_generate.py, tests/e2e/test_generation.py) ------------

GENERATION_PARAMS = SamplingParams(n=3, temperature=0.9, max_new_tokens=24, seed=7)


def generation_prompts(count: int):
    """`count` arithmetic prompts of difficulties 1 and 2, for round r001."""
    from synth.arithmetic import make_problems

    return make_problems({1: count // 2, 2: count - count // 2}, seed=3, round_key="r001")


def generation_job(model_dir, out_dir, shard_size=4, params=GENERATION_PARAMS, backend="hf", options=None):
    """A GenerationJob of round r001 from the base policy."""
    from synth.generate import GenerationJob

    return GenerationJob(
        backend=backend,
        model_dir=str(model_dir),
        params=params,
        out_dir=str(out_dir),
        round="r001",
        policy_id="base",
        policy_hash="abc",
        shard_size=shard_size,
        options=options if options is not None else {"batch_size": 16},
    )


# ---- a benchmark of one's own (tests/unit/filters/test_evaluation_tasks.py, tests/e2e/test_evaluation_tasks.py)

# The tiny model of the vLLM tests: vLLM's CPU attention kernels refuse head dimensions
# below 32, and 128 hidden over 2 heads is 64.
VLLM_TINY_SPEC = dict(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=256, max_positions=128, seed=1)
VLLM_ENGINE = {"dtype": "float32", "max_model_len": 128, "max_lora_rank": 8}  # sampling.vllm of those tests


def vllm_tiny_model(folder: Path, max_positions: int = 128) -> Path:
    """A tiny base model that vLLM's CPU build serves (head_dim 64), built in `folder`."""
    from synth.tiny import TinySpec, build_tiny_model

    return build_tiny_model(TinySpec(**{**VLLM_TINY_SPEC, "max_positions": max_positions}), folder)


LM_EVAL_PAIRS = [(a, b) for a in range(10) for b in range(10) if (a * 7 + b) % 9 == 0][:12]


def lm_eval_benchmark(folder: Path) -> Path:
    """folder/bench.jsonl (sums of LM_EVAL_PAIRS) and an lm-eval task over it, tiny_sums, in
    folder/lm_tasks; returns the dataset file."""
    rows = [{"id": f"b{a}{b}", "question": f"Q: {a}+{b}=? A:", "answer": str(a + b)} for a, b in LM_EVAL_PAIRS]
    path = folder / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = folder / "lm_tasks"
    tasks.mkdir()
    (tasks / "sums.yaml").write_text(
        textwrap.dedent(f"""
        task: tiny_sums
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {path}
        test_split: test
        output_type: generate_until
        doc_to_text: "{{{{question}}}}"
        doc_to_target: "{{{{answer}}}}"
        generation_kwargs:
          until: [";"]
          max_gen_toks: 12
          do_sample: false
        metric_list:
          - metric: exact_match
            aggregation: mean
            higher_is_better: true
    """)
    )
    return path


def lm_eval_config(folder: Path, **evaluation) -> Path:
    """The tiny experiment, one round, with these evaluation settings."""
    return copy_config(
        make_tiny_config(folder),
        folder / "bench.yaml",
        max_rounds=1,
        evaluation={"max_new_tokens": 40, "batch_size": 64, **evaluation},
    )
