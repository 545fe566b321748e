# Two commands do everything on a fresh machine (README): `make dev` and `make test`. `make help` lists targets.
# Python: 3.13 (the Lambda runtime) when pyenv or PATH has it, otherwise python3 (3.11 works too).
PYTHON ?= $(shell PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null || command -v python3.13 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help dev test test-fast test-unit test-integration lint bench bench-cold load build clean smoke e2e setup-db ac-clients

help:                  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:[^#]*## /\t/' | expand -t 12

$(STAMP): requirements-dev.txt layers/common/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

dev: $(STAMP)          ## start the local stack (API on port PORT, default 3000) with embedded defaults
	$(BIN)/python -m devstack

# The gates: ruff, mypy over the layer and the handlers (pyproject.toml [tool.mypy]: zero errors), and the
# complexity gate, a normal test (tests/unit/test_complexity.py), so every pytest run below includes it.
test: $(STAMP)         ## lint + types + every test (unit, integration, e2e: docs/architecture.md "Test tiers"); what CI runs
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

test-fast: $(STAMP)    ## lint + types + the unit and integration tests not marked slow (pyproject.toml markers)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -m "not slow"

test-unit: $(STAMP)    ## the unit tier: in-process, fakes, no socket or subprocess (a guard fails a test that tries)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP)  ## the integration tier: the local stack (AC stand-in, nx-27017, moto, subprocesses)
	$(BIN)/python -m pytest tests/integration

lint: $(STAMP)         ## ruff + mypy + the complexity gate + cfn-lint on template.yaml
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q tests/unit/test_complexity.py
	$(BIN)/cfn-lint template.yaml

bench: $(STAMP)        ## benchmarks against the local stack (see benchmarks/README.md)
	$(BIN)/python benchmarks/bench_export.py

bench-cold: $(STAMP)   ## each function's import time and first request; then imports from the built layer (PyPI)
	$(BIN)/python benchmarks/bench_cold.py
	$(BIN)/python benchmarks/bench_cold.py --layer

load: $(STAMP)         ## 60 s, 50 users, 2 server processes sharing one Mongo (benchmarks/load/README.md)
	$(BIN)/python benchmarks/load/run_load.py

# `make smoke API_URL=... AC_URL=... AC_KEY=... JWT_SECRET=...` (docs/deploy.md, "Smoke test"). The recipe is
# not echoed (@), so the key and the secret are not printed; the script never prints them either.
smoke: $(STAMP)        ## save, page, full job, live round trip, delete against a deployed (or `make dev`) API
	@API_URL="$(API_URL)" AC_URL="$(AC_URL)" AC_KEY="$(AC_KEY)" JWT_SECRET="$(JWT_SECRET)" $(BIN)/python scripts/smoke.py

# The same steps as pytest tests (tests/e2e), against the same four settings; CI runs it against `make dev`.
e2e: $(STAMP)          ## tests/e2e against API_URL (deployed or make dev): job, live round trip, tokens
	@API_URL="$(API_URL)" AC_URL="$(AC_URL)" AC_KEY="$(AC_KEY)" JWT_SECRET="$(JWT_SECRET)" $(BIN)/python -m pytest tests/e2e

# Outside `make test`: each client is installed from PyPI into its own venv under .clients/ (one needs Python 3.10).
ac-clients: $(STAMP)   ## run Singer's tap, Airbyte's source and AC's MCP server against the sandbox; a table each
	$(BIN)/python -m devstack.ac_clients

setup-db: $(STAMP)     ## create the MongoDB indexes (python -m acexport.setup_db; MONGODB_URI or MONGODB_URI_SECRET_ARN)
	PYTHONPATH=layers/common $(BIN)/python -m acexport.setup_db

build: $(STAMP)        ## sam build (needs the SAM CLI and python3.13 on PATH; not part of `make test`)
	sam build

clean:                 ## remove the venv, SAM build output and caches
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache .mypy_cache .clients
