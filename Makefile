# Two commands on a fresh clone: `make serve` and `make test`. Each bootstraps .venv.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: serve test lint typecheck check install bench fuzz load clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

serve: $(STAMP)
	HOST=$(HOST) PORT=$(PORT) $(BIN)/chad-memory serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

test: check
	$(BIN)/python -m pytest

# Nightly-style: many more generated requests than CI, with fresh random cases each time.
FUZZ_CASES ?= 20000
fuzz: $(STAMP)
	CHAD_FUZZ_CASES=$(FUZZ_CASES) CHAD_FUZZ_RANDOM=1 $(BIN)/python -m pytest -q -s tests/reliability/test_api_fuzz.py

# 100 clients for 2 minutes against `chad-memory serve`, database restarted halfway.
load: $(STAMP)
	$(BIN)/python bench/load.py --clients 100 --duration 120 --output bench/results/load.json

bench: $(STAMP)
	@echo "see bench/README.md"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
