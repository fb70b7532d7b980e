# Set-up commands (see README): `make run` and `make test`. Everything installs into .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
STAMP := $(VENV)/.installed

URL := http://127.0.0.1:8000

.PHONY: install run test test-fast lint postgres chromium migrate

$(STAMP): pyproject.toml primscene_client/pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ./primscene_client -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

postgres:
	scripts/ensure_postgres.sh

# The browser test (tests/browser/test_web_app.py) drives Debian's Chromium.
chromium:
	scripts/ensure_chromium.sh

# Bring the configured database (PRIMSCENE_DATABASE_URL, default: embedded SQLite) up to date.
migrate: install
	$(VENV)/bin/python -m db.migrate

# The whole service on this machine: embedded SQLite, shipped weights, Ray Serve on $(URL).
# Ray Serve's throughput mode (docs/benchmarks.md): the Ingress replica also serves HTTP itself
# on $(FAST_URL), skipping Serve's proxy, which still answers on $(URL). The Serve controller's
# loop runs every 0.5 s instead of 0.1 (half its CPU; docs/levers.md). A stopping Ingress finishes
# its requests in flight without staying up 30 s for a load balancer (none on one machine).
# RAY_worker_niceness=0: Ray starts its workers at nice 15, the Ingress among them, below Ray's own
# daemons; at 0 the Ingress keeps the priority over the model replicas (nice 10) that
# `model_niceness` means it to have (docs/levers.md).
FAST_URL := http://127.0.0.1:8001
THROUGHPUT_MODE := RAY_SERVE_THROUGHPUT_OPTIMIZED=1 RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=8001 RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT=8002 \
	RAY_SERVE_CONTROL_LOOP_INTERVAL_S=0.5 RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=0

run: migrate
	@$(VENV)/bin/python -m serve_app.bootstrap
	@echo "Primscene starts on $(URL) (API docs: $(URL)/docs), and without Serve's proxy hop on $(FAST_URL); Ctrl-C stops it."
	RAY_USAGE_STATS_ENABLED=0 RAY_worker_niceness=0 $(THROUGHPUT_MODE) $(VENV)/bin/serve run configs/local.yaml

# Lint and import order (ruff), types (mypy): settings in pyproject.toml; CI runs this first.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Every tier (tests/README.md), one after another, as CI runs them.
test: install postgres chromium
	$(VENV)/bin/pytest

# The tiers that need no Ray and no browser (tests/unit, tests/integration), one file per worker
# (the model files as one, the longest first: tests/support/scheduling.py), a worker more than the
# cores (some tests wait on timers): 53-57 s on 2 cores (tests/README.md).
# No fuzzing in these tiers, so Hypothesis' and Schemathesis' plugins stay unloaded. Installs
# nothing on the host; starts an installed PostgreSQL if it is stopped.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test-fast: install
	scripts/ensure_postgres.sh --no-install
	$(VENV)/bin/pytest tests/unit tests/integration -n $(TEST_WORKERS) --dist loadfile -p no:hypothesispytest -p no:schemathesis
