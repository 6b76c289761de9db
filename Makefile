# The two commands: `make demo` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PLUGINS := $(wildcard plugins/*/pyproject.toml)
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
GTO_VENV := .venv-gto
MLFLOW_VENV := .venv-mlflow
PYTEST_ARGS ?=

.PHONY: demo test lint format bench tools clean

# Two stamps: the demo needs the console alone; tests, lint and bench also need the plugins
# and the dev tools (pytest, mypy, ruff). A dev install serves the demo too.
$(DEMO_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e .
	@touch $(DEMO_STAMP)

$(STAMP): pyproject.toml $(PLUGINS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	@touch $(STAMP) $(DEMO_STAMP)

# Peers the tests talk to, each in its own venv so the console never depends on them.
$(GTO_VENV)/bin/gto:
	@test -x $(GTO_VENV)/bin/python || $(PYTHON) -m venv $(GTO_VENV)
	$(GTO_VENV)/bin/python -m pip install -q --disable-pip-version-check 'gto>=1.7'

$(MLFLOW_VENV)/bin/mlflow:
	@test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install -q --disable-pip-version-check 'mlflow>=3,<4'

tools: $(GTO_VENV)/bin/gto $(MLFLOW_VENV)/bin/mlflow

demo: $(DEMO_STAMP)
	$(BIN)/cd4ml-console demo

# Two runs: first the tests with wall-time bounds ("quiet": a fault must be reported within
# timeout + 1 s) alone, before minutes of load have slowed this VM down; then everything else
# on two workers. A quiet test that misses a bound (an AssertionError) runs again, twice at
# most, 10 s apart: this VM's speed moves by half for a minute at a time, and a real slowdown
# misses all three. Exit 5 is "nothing selected" (when PYTEST_ARGS picks one run's tests only).
PEERS := CD4ML_GTO=$(abspath $(GTO_VENV)/bin/gto) CD4ML_MLFLOW=$(abspath $(MLFLOW_VENV)/bin/mlflow)
QUIET_RERUNS := --reruns 2 --reruns-delay 10 --only-rerun AssertionError -rR
test: $(STAMP) tools
	$(PEERS) $(BIN)/python -m pytest -q -m quiet $(QUIET_RERUNS) $(PYTEST_ARGS) || test $$? -eq 5
	$(PEERS) $(BIN)/python -m pytest -n 2 --dist loadgroup -q -m "not quiet" $(PYTEST_ARGS) || test $$? -eq 5

# lint-imports checks the layers' import rules ([tool.importlinter] in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check console plugins tests bench
	$(BIN)/ruff format --check console plugins tests bench
	$(BIN)/mypy console
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format console plugins tests bench
	$(BIN)/ruff check --fix console plugins tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(GTO_VENV) $(MLFLOW_VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
