# Set-up commands (see README): `make run` and `make test`. Everything installs into .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
STAMP := $(VENV)/.installed

URL := http://127.0.0.1:8000

.PHONY: install run test postgres chromium migrate

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

postgres:
	scripts/ensure_postgres.sh

# The browser test (tests/test_web_app.py) drives Debian's Chromium.
chromium:
	scripts/ensure_chromium.sh

# Bring the configured database (PRIMSCENE_DATABASE_URL, default: embedded SQLite) up to date.
migrate: install
	$(VENV)/bin/python -m db.migrate

# The whole service on this machine: embedded SQLite, shipped weights, Ray Serve on $(URL).
run: migrate
	@$(VENV)/bin/python -m serve_app.bootstrap
	@echo "Primscene starts on $(URL) (API docs: $(URL)/docs); Ctrl-C stops it."
	RAY_USAGE_STATS_ENABLED=0 $(VENV)/bin/serve run configs/local.yaml

test: install postgres chromium
	$(VENV)/bin/pytest
