# Two commands do all set-up on a fresh machine:
#   make demo   create .venv (torch pinned first), run 3 rounds of the embedded default
#   make test   create .venv the same way, run the test suite (what .ci/run calls)
# make ui opens the Dagster UI on 127.0.0.1:3000 over the same instance.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 3000
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home

.PHONY: setup demo test ui status clean-runs

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/selftaught run --rounds 3

status: setup
	$(BIN)/selftaught status

test: setup
	$(BIN)/python -m pytest

ui: setup
	$(BIN)/selftaught ui --config $${SELFTAUGHT_CONFIG:-pipelines/presets/demo.yaml} --port $(PORT)

clean-runs:
	rm -rf data/runs data/dagster_home
