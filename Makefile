# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
# The demo's maintenance run (prepares data copies, applies retention) repeats every few
# seconds next to the server; production runs it from a timer (docs/deployment.md).
MAINTENANCE_EVERY ?= 5
# The demo is development (PORTAL_ENV defaults to production, which needs real settings).
FLASK := PORTAL_ENV=development PORTAL_SERVER_NAME=localhost:$(PORT) $(BIN)/flask --app wsgi

.PHONY: run serve test lint db seed reset-demo screenshots clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

db: $(VENV)/.installed
	$(FLASK) db upgrade

seed: db
	$(FLASK) seed-demo

# Start the demo over: its database is deleted and made again (the demo's only; nothing else).
reset-demo: $(VENV)/.installed
	rm -f instance/portal.sqlite3
	$(MAKE) --no-print-directory seed

run: seed
	@echo
	@echo "Partner Portal is starting:"
	@echo "  operator console  http://localhost:$(PORT)/"
	@echo "  Acme Corp         http://acme.localhost:$(PORT)/"
	@echo "  Globex            http://globex.localhost:$(PORT)/"
	@echo "  (copies of people's data are prepared by \`flask maintenance run --every $(MAINTENANCE_EVERY)\`, in the background)"
	@echo
	@$(FLASK) maintenance run --every $(MAINTENANCE_EVERY) & maintenance=$$!; \
	trap 'kill $$maintenance 2>/dev/null' EXIT INT TERM; \
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

# Production: gunicorn with the settings in gunicorn.conf.py; every PORTAL_* variable comes
# from the environment (PORTAL_ENV defaults to production, which refuses to start without a
# secret key, server name and database URL). Migrate first with the owner's URL.
serve: $(VENV)/.installed
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# axe-core for the accessibility browser tests, from the npm registry (pinned in
# tests/package-lock.json). Without npm the tests that need it are skipped with the reason
# (failed when PORTAL_REQUIRE_CHROMIUM=1, as on CI).
tests/node_modules/.installed: tests/package.json tests/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "npm not found: the accessibility (axe-core) browser tests will be skipped."; \
	fi

# SQLite always; PostgreSQL too when PORTAL_TEST_DATABASE_URL is set (required when
# PORTAL_REQUIRE_POSTGRES=1, as on CI). The two passes run at once, one per core: SQLite in
# the foreground, PostgreSQL's output kept and shown when it ends; either failing fails the
# target. The browser tests (marker `browser`) run in the SQLite pass only: they drive pages,
# and what differs between the databases (row-level security, locks, two writers at once) is
# proven below the browser, on both.
test: lint tests/node_modules/.installed
	@if [ -n "$$PORTAL_TEST_DATABASE_URL" ]; then \
		log=$$(mktemp); \
		PORTAL_TEST_DB=postgres $(BIN)/pytest -p no:cacheprovider -m "not browser" >$$log 2>&1 & \
		postgres=$$!; trap 'kill $$postgres 2>/dev/null' INT TERM; \
		PORTAL_TEST_DB=sqlite $(BIN)/pytest; sqlite=$$?; \
		wait $$postgres; pg=$$?; \
		echo; echo "----- the PostgreSQL pass (run alongside) -----"; cat $$log; rm -f $$log; \
		echo "SQLite pass: exit $$sqlite; PostgreSQL pass: exit $$pg"; \
		[ $$sqlite -eq 0 ] && [ $$pg -eq 0 ]; \
	elif [ "$$PORTAL_REQUIRE_POSTGRES" = "1" ]; then \
		echo "PORTAL_REQUIRE_POSTGRES=1 but PORTAL_TEST_DATABASE_URL is not set" >&2; exit 1; \
	else \
		PORTAL_TEST_DB=sqlite $(BIN)/pytest || exit 1; \
		echo "PostgreSQL pass skipped: set PORTAL_TEST_DATABASE_URL to run the suite against it too."; \
	fi

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	@echo "Installing the project's bench extra (gunicorn) into $(VENV)"
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

# The scale dataset (built once, cached under instance/bench/), the portal and the baseline app
# under gunicorn, wrk at concurrency 1 and 8. PostgreSQL too when PORTAL_BENCH_DATABASE_URL is
# set; PORTAL_BENCH_QUICK=1 for 3-second runs. wrk is not installed here: the target says so.
bench: $(VENV)/.installed-bench
	@command -v wrk >/dev/null || { echo "make bench needs wrk: sudo apt-get install wrk" >&2; exit 2; }
	$(BIN)/python benchmarks/bench.py

# The screenshots in docs/screenshots/ (the guides and the README show them): the persona
# journeys in the browser, on the demo data, saving as they go.
screenshots: $(VENV)/.installed-dev
	PORTAL_SCREENSHOTS=docs/screenshots PORTAL_TEST_DB=sqlite $(BIN)/pytest -q tests/test_journeys_browser.py

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache tests/node_modules
