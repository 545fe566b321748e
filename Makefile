# Two commands do everything on a fresh machine (README): `make dev` and `make test`.
# Python: 3.13 (the Lambda runtime) when pyenv or PATH has it, otherwise python3 (3.11 works too).
PYTHON ?= $(shell PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null || command -v python3.13 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test lint bench load build clean

$(STAMP): requirements-dev.txt layers/common/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

dev: $(STAMP)          ## start the local stack (API on $$PORT, default 3000) with embedded defaults
	$(BIN)/python -m devstack

test: $(STAMP)         ## lint + every test (unit, integration, template)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/cfn-lint template.yaml

bench: $(STAMP)        ## benchmarks against the local stack (see benchmarks/README.md)
	$(BIN)/python benchmarks/bench_export.py

load: $(STAMP)         ## 60 s, 50 users, 2 server processes sharing one Mongo (benchmarks/load/README.md)
	$(BIN)/python benchmarks/load/run_load.py

build: $(STAMP)        ## sam build (needs the SAM CLI and python3.13 on PATH; not part of `make test`)
	sam build

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache
