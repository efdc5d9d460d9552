# Set-up and everyday commands. `make run` and `make test` work on a fresh clone.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
REDIS ?= redis://127.0.0.1:6379/0

.PHONY: run test test-services test-browser screenshots lint format migrate bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

migrate: $(VENV)/.installed
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py ensure_admin
	$(PY) manage.py load_sample_games
	DJANGO_DEBUG=true $(PY) manage.py runserver $(HOST):$(PORT)

# The default suite: SQLite, in-process cache and channel layer. Browser tests
# run when /usr/bin/chromium is there; PostgreSQL/Redis tests are skipped here
# and run by `make test-services`.
test: $(VENV)/.installed-dev
	$(PY) -m pytest

# The parts that depend on the database, cache and channel layer, again on the
# real PostgreSQL and Redis: quotas under concurrency over two server
# processes, shared rate limits, rooms across workers, and the suites around them.
SERVICE_SUITES := tests/usage tests/inference tests/games tests/compat tests/faults tests/security
test-services: $(VENV)/.installed-dev
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS) VGP_TEST_SERVICES=1 \
		$(PY) -m pytest -m "not browser" -p no:cacheprovider --create-db $(SERVICE_SUITES)

test-browser: $(VENV)/.installed-dev
	$(PY) -m pytest -m browser

# Refresh the README's screenshots from a browser test run.
screenshots: $(VENV)/.installed-dev
	VGP_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -m browser tests/browser/test_dungeon_master.py

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.installed-dev
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
