# The two commands a newcomer needs: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test test-fast test-timeshift lint format bench bench-deps venv venv-dev browser-deps migration clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.runtime
venv-dev: $(VENV)/.dev

## run: start the whole service locally (SQLite, console SMS, local REDCap-compatible API)
run: venv
	$(PY) scripts/devstack.py

## test: lint, then the whole test suite (SQLite, and PostgreSQL when it answers)
test: venv-dev browser-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

## test-fast: the edit-test loop: everything but the slow fault/load tests and the browser tests
test-fast: venv-dev
	$(PY) -m pytest -m "not slow and not browser" -q

## test-timeshift: the suite (browser tests aside) with every clock moved by TIMESHIFT, e.g. +400d or -20d
TIMESHIFT ?= +400d
test-timeshift: venv-dev
	TIMESHIFT='$(TIMESHIFT)' PYTHONPATH='$(CURDIR)/tests/timeshift_site' $(PY) -m pytest -m "not browser" -q

lint: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv-dev
	$(VENV)/bin/ruff format .

## bench: the benchmarks in bench/, each printing ours next to a baseline
bench: venv-dev bench-deps
	for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

## bench-deps: Debian's wrk, the HTTP load generator of bench/bench_questionnaire.py
bench-deps:
	@if ! command -v wrk >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing wrk from Debian's packages"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) \
				|| echo "wrk could not be installed: bench/bench_questionnaire.py will stop"; \
		else echo "wrk not installed and not root: bench/bench_questionnaire.py will stop"; fi; \
	fi

## browser-deps: Debian's Chromium for the Playwright tests (they skip with the reason if this fails)
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium from Debian's packages"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
				|| echo "chromium could not be installed: browser tests will skip"; \
		else echo "chromium not installed and not root: browser tests will skip"; fi; \
	fi

## migration: rebuild the single initial migration from the models (before the first release only)
migration: venv
	scripts/regenerate_initial_migration.sh

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
