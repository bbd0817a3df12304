"""Fixtures and pytest hooks of the suite; the helpers the tests import are in tests/helpers.py."""

import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers import fresh_dagster_home, make_tiny_config

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
