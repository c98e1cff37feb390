# Two commands on a fresh clone: `make serve` and `make test`. Each bootstraps .venv.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: system-packages serve test lint typecheck check install bench bench-runs bench-http fuzz load load-pgbouncer clean screenshots

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

# System packages the tests drive for real: Debian's chromium (browser tests) and
# pgbouncer (tests/test_pooler.py). Installed when either is missing and we are root
# with apt (as on CI and a fresh machine); otherwise this stops with the one-line hint.
system-packages:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/sbin/pgbouncer ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing chromium and pgbouncer (Debian packages the tests need)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium pgbouncer; \
		else \
			echo "the tests need Debian's chromium and pgbouncer; install them with: sudo apt-get install -y chromium pgbouncer"; exit 1; \
		fi; \
	fi

test: check system-packages
	$(BIN)/python -m pytest

# PNGs of every dashboard page with sample data, for the README (needs `apt-get install chromium`).
screenshots: $(STAMP)
	$(BIN)/python -m tests.ui.screenshots --out docs/screenshots

# Benchmarks get their own venv: the peers and the real-text model (torch) stay out of
# `make test`. torch==2.13.0 goes in first: it is the CPU wheel this machine has on disk;
# any other torch pulls several GB of CUDA packages.
BENCH_VENV ?= .venv-bench
BENCH_BIN := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed-bench
SIZE ?= 100000
# The harder synthetic set (4x the clusters, more noise) needs IVFFLAT probes near an
# exact scan, so it is measured at a smaller size to keep `make bench` within the hour.
HARD_SIZE ?= 20000
PEER_SIZE ?= 10000
TEXT_SIZE ?= 10000
STEPS ?= 50000
RUN_SIZES ?= 10000,1000000
HTTP_REQUESTS ?= 20
RESULTS := bench/results

$(BENCH_STAMP): pyproject.toml
	@test -x $(BENCH_BIN)/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install --quiet --upgrade pip
	$(BENCH_BIN)/python -m pip install --quiet torch==2.13.0
	$(BENCH_BIN)/python -m pip install --quiet -e '.[bench]'
	@touch $@

bench: $(BENCH_STAMP)
	@mkdir -p $(RESULTS)
	SIZE=$(SIZE) $(BENCH_BIN)/python -m bench.vectors --out $(RESULTS)/vectors.json \
		> $(RESULTS)/vectors.md && cat $(RESULTS)/vectors.md
	SIZE=$(HARD_SIZE) $(BENCH_BIN)/python -m bench.vectors --hard --out $(RESULTS)/vectors_hard.json \
		> $(RESULTS)/vectors_hard.md && cat $(RESULTS)/vectors_hard.md
	PEER_SIZE=$(PEER_SIZE) $(BENCH_BIN)/python -m bench.peers --out $(RESULTS)/peers.json \
		> $(RESULTS)/peers.md && cat $(RESULTS)/peers.md
	EMBEDDING_DIM=384 HF_HUB_OFFLINE=1 TEXT_SIZE=$(TEXT_SIZE) $(BENCH_BIN)/python -m bench.realtext \
		> $(RESULTS)/realtext.md && cat $(RESULTS)/realtext.md
	STEPS=$(STEPS) RUN_SIZES=$(RUN_SIZES) $(BENCH_BIN)/python -m bench.ingest \
		> $(RESULTS)/ingest.md && cat $(RESULTS)/ingest.md
	RUN_SIZES=$(RUN_SIZES) HTTP_REQUESTS=$(HTTP_REQUESTS) $(BENCH_BIN)/python -m bench.http_api \
		> $(RESULTS)/http_api.md && cat $(RESULTS)/http_api.md

# Only the run-history tables (bench/ingest.py, bench/http_api.py): they need nothing
# beyond the dev venv, so no torch and no peers.
bench-runs: $(STAMP)
	@mkdir -p $(RESULTS)
	STEPS=$(STEPS) RUN_SIZES=$(RUN_SIZES) $(BIN)/python -m bench.ingest \
		> $(RESULTS)/ingest.md && cat $(RESULTS)/ingest.md
	RUN_SIZES=$(RUN_SIZES) HTTP_REQUESTS=$(HTTP_REQUESTS) $(BIN)/python -m bench.http_api \
		> $(RESULTS)/http_api.md && cat $(RESULTS)/http_api.md

# Requests/s over real HTTP (wrk -t2 -c16, one uvicorn worker each) beside the
# hand-written FastAPI + asyncpg handlers in bench/reference_api.py; needs `wrk` (Debian
# package wrk). BEFORE_SRC=path/to/an/older/checkout adds its figures in the same rounds.
WRK_SECONDS ?= 8
BEFORE_SRC ?=
bench-http: $(STAMP)
	@mkdir -p $(RESULTS)
	WRK_SECONDS=$(WRK_SECONDS) $(BIN)/python -m bench.http_wrk --out $(RESULTS)/http_wrk.json \
		$(if $(BEFORE_SRC),--before-src $(BEFORE_SRC)) > $(RESULTS)/http_wrk.md \
		&& cat $(RESULTS)/http_wrk.md

# Nightly-style: many more generated requests than CI, with fresh random cases each time.
FUZZ_CASES ?= 20000
fuzz: $(STAMP)
	CHAD_FUZZ_CASES=$(FUZZ_CASES) CHAD_FUZZ_RANDOM=1 $(BIN)/python -m pytest -q -s tests/reliability/test_api_fuzz.py

# 100 clients for 2 minutes against `chad-memory serve`, database restarted halfway.
load: $(STAMP)
	$(BIN)/python bench/load.py --clients 100 --duration 120 --output bench/results/load.json

# The same through a real PgBouncer in transaction mode (DB_POOLER=transaction).
load-pgbouncer: $(STAMP) system-packages
	$(BIN)/python bench/load.py --clients 100 --duration 120 --pgbouncer \
		--output bench/results/load_pgbouncer.json

clean:
	rm -rf $(VENV) $(BENCH_VENV) .mypy_cache .ruff_cache .pytest_cache
