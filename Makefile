# Tipline: `make run` (the demo) and `make test` (lint + the whole suite) on a fresh machine.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The first Python >= 3.12 found: on PATH, then under pyenv.
PYTHON ?= $(shell for p in python3.13 python3.12 \
	$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -rV); do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: run test lint bench venv clean translations system-deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "Python >= 3.12 not found (try pyenv install 3.12)"; exit 1; fi
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: venv
	$(BIN)/tipline demo

lint: venv
	$(BIN)/ruff check
	$(BIN)/mypy
	@# The real bandit beside ruff's S rules (config and skips: [tool.bandit] in pyproject.toml).
	@# Its "nosec encountered ..., but no failed test" warnings are a known false alarm on
	@# multi-line statements and nested calls (PyCQA/bandit#1041), so they are filtered out.
	$(BIN)/bandit -c pyproject.toml -r tipline keys triage -q 2> >(grep -v 'but no failed test' >&2)

# What the tests need from Debian (installed when root, with one apt-get update): Chromium for
# the browser tests, PostgreSQL's server and Redis. No service is enabled or started: the tests
# start clusters of their own (tests/postgres_server.py).
system-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/redis-server ] || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "Missing:$$missing: run 'sudo apt-get install$$missing'"; exit 1; fi; \
	fi

test: venv system-deps lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Every benchmark runs even when an earlier one misses its target; the exit code says if any did.
bench: venv
	@failed=""; for script in benchmarks/*.py; do \
		case $$script in */bare_app.py|*/_*) continue;; esac; \
		echo "== $$script"; $(BIN)/python $$script || failed="$$failed $$script"; done; \
	if [ -n "$$failed" ]; then echo "missed a target or failed:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) instance .mypy_cache .ruff_cache

# After changing UI strings: refresh the catalog, translate the new entries in
# triage/translations/vi/LC_MESSAGES/messages.po, then compile.
translations: venv
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o triage/translations/messages.pot .
	$(BIN)/pybabel update -i triage/translations/messages.pot -d triage/translations
	$(BIN)/pybabel compile -d triage/translations
