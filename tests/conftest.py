"""Fixtures and pytest hooks of the suite; the helpers the tests import are in tests/helpers.py."""

import os
import signal
import tempfile
from pathlib import Path

import pytest

from tests.helpers import S3_BUCKET, fresh_dagster_home, make_tiny_config, start_moto

# the skip policy: under `make test` (SELFTAUGHT_STRICT_SKIPS=1) a skip not listed in
# tests/allowed_skips.py fails the session
pytest_plugins = ["tests.allowed_skips"]

# Trackio (which TRL imports when installed) fixes its folder at import: keep it out of ~/.cache
os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="selftaught-tests-trackio-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny Llama + char tokenizer, built offline once."""
    from synth.tiny import TinySpec, build_tiny_model

    return build_tiny_model(
        TinySpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=64),
        tmp_path_factory.mktemp("tiny") / "model",
    )


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    return make_tiny_config(tmp_path)


@pytest.fixture
def dagster_home(tmp_path):
    with fresh_dagster_home(tmp_path) as home:
        yield home


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto_server on a free loopback port, with one bucket (S3_BUCKET); yields its endpoint URL."""
    proc, url = start_moto(tmp_path_factory.mktemp("moto") / "server.log")
    old = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
    import s3fs

    s3fs.S3FileSystem(endpoint_url=url).mkdir(S3_BUCKET)
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
