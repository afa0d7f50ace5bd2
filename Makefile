# Flowdeck: `make run` starts the console with demo data; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The demo's stand-in services are Flowdeck itself: its connection points at this address.
FLOWDECK_SITE_URL ?= http://127.0.0.1:$(PORT)
export FLOWDECK_SITE_URL
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Services for the second test pass (CI runs the suite on PostgreSQL + Redis too).
PG_URL ?= postgres://postgres@127.0.0.1:5432/flowdeck
REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test test-sqlite test-services bench bench-peers setup migrate demo browser-deps clean

# The example step type package is installed too: the tests load it through its entry point.
EXAMPLE_STEPS := examples/flowdeck-example-steps

$(VENV)/.installed: pyproject.toml $(EXAMPLE_STEPS)/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet -e $(EXAMPLE_STEPS)
	touch $@

# Browser components (the YAML editor, axe-core for the accessibility tests) and the OIDC provider
# of the single sign-on tests, from the npm registry.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

migrate: setup
	$(PY) manage.py migrate --no-input

demo: migrate
	$(PY) manage.py load_demo

run: demo
	@echo ""
	@echo "  Flowdeck is starting at http://127.0.0.1:$(PORT)/"
	@echo "  Demo logins (password 'flowdeck' for each):"
	@$(PY) manage.py load_demo --list-logins
	@echo ""
	PORT=$(PORT) $(VENV)/bin/honcho start

# Debian's Chromium drives the browser tests; never a downloaded browser.
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

test: setup browser-deps
	$(MAKE) test-sqlite
	$(MAKE) test-services

test-sqlite:
	$(PY) -m pytest -q

# On PostgreSQL and Redis: always in CI (a missing service fails), otherwise when they answer.
# The first pass alone runs what no backend changes: the accessibility checks and the phone-width
# check read the pages' markup, and the learned-weights evaluation is arithmetic over fixtures.
test-services:
	@if [ "$$CI" = "true" ] || $(PY) scripts/services_up.py --quiet; then \
		$(PY) scripts/services_up.py && \
		DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) $(PY) -m pytest -q \
			--deselect tests/browser/test_accessibility.py \
			--deselect tests/browser/test_editor_and_phone.py::test_main_pages_fit_a_phone_and_log_no_console_errors \
			--deselect tests/knowledge/test_fusion.py::test_knowledge_eval_learns_weights_per_fold_and_beats_the_fixed_ones_on_a_foreign_taxonomy; \
	else echo "PostgreSQL or Redis not reachable: skipping the services pass (CI=true makes this a failure)."; fi

bench: migrate
	$(PY) -m bench

# Flowdeck beside DBOS on the same PostgreSQL and Redis, in interleaved rounds (bench/_peers.py).
# DBOS lives in its own virtualenv: it is a peer measured, not a dependency.
PEERS_VENV := .venv-peers
$(PEERS_VENV)/.installed:
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet "dbos==3.4.0"
	touch $@

bench-peers: setup $(PEERS_VENV)/.installed
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) $(PY) -m bench._peers

clean:
	rm -rf $(VENV) $(PEERS_VENV) var
