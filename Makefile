# Set-up commands (see README): `make test`. Everything installs into .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
STAMP := $(VENV)/.installed

.PHONY: install test postgres migrate

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

postgres:
	scripts/ensure_postgres.sh

# Bring the configured database (PRIMSCENE_DATABASE_URL, default: embedded SQLite) up to date.
migrate: install
	$(VENV)/bin/python -m db.migrate

test: install postgres
	$(VENV)/bin/pytest
