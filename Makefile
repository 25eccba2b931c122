# Tipline: `make run` (the demo) and `make test` (lint + the whole suite) on a fresh machine.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The first Python >= 3.12 found: on PATH, then uv's, then under pyenv. Debian 12's python3 is
# 3.11: `uv python install 3.12` (or pyenv) gets one (docs/deploy.md, "Python").
PYTHON ?= $(shell for p in python3.13 python3.12 \
	$$(command -v uv >/dev/null 2>&1 && uv python find '>=3.12' 2>/dev/null) \
	$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -rV); do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: run test lint bench audit venv clean translations system-deps lock

# The lock (make lock writes it, every other target installs from it): exact versions and
# hashes of every package, for Python 3.12 and 3.13 on any platform. runtime.txt is what
# production installs (deploy/Dockerfile); dev.txt adds the demo's embedded Redis, the test and
# lint tools and the build backend; build.txt is the build backend alone.
LOCKS := requirements/dev.txt requirements/runtime.txt requirements/build.txt
AUDIT_LOCK := requirements/audit.txt

venv: $(STAMP)

# The project itself is installed editable, without its dependencies and without build
# isolation: setuptools comes from the lock too, so nothing is downloaded unchecked.
$(STAMP): pyproject.toml setup.py $(LOCKS)
	@if [ -z "$(PYTHON)" ]; then echo "Tipline needs Python >= 3.12 and none was found (Debian 12's python3 is 3.11). Install one: 'uv python install 3.12' (or 'pyenv install 3.12'), then run make again, or name it: make PYTHON=/path/to/python3.12"; exit 1; fi
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Refreshes the lock on purpose: the newest versions pyproject.toml allows (keep the current
# pins where they still fit with `make lock LOCK_UPGRADE=`). uv comes from the lock when the
# venv has it, else from PyPI. dev.txt is resolved first; runtime.txt, build.txt and audit.txt
# take its versions, so the tests run what production installs.
LOCK_UPGRADE ?= --upgrade
UV_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.12 --generate-hashes \
	--custom-compile-command "make lock" $(LOCK_UPGRADE)
lock:
	@if [ -z "$(PYTHON)" ]; then echo "Tipline needs Python >= 3.12 and none was found (Debian 12's python3 is 3.11). Install one: 'uv python install 3.12' (or 'pyenv install 3.12'), then run make again, or name it: make PYTHON=/path/to/python3.12"; exit 1; fi
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@[ -x $(BIN)/uv ] || $(BIN)/python -m pip install --quiet uv
	$(UV_COMPILE) pyproject.toml requirements/build.in --extra demo --extra dev \
		-o requirements/dev.txt
	$(UV_COMPILE) pyproject.toml -c requirements/dev.txt -o requirements/runtime.txt
	$(UV_COMPILE) requirements/build.in -c requirements/dev.txt -o requirements/build.txt
	$(UV_COMPILE) requirements/audit.in -o $(AUDIT_LOCK)

# PORT: where the demo listens (default 5000); a busy port stops it before anything is printed.
PORT ?= 5000
run: venv
	$(BIN)/tipline demo --port $(PORT)

lint: venv
	$(BIN)/ruff check
	$(BIN)/mypy
	@# The layering contract (.importlinter): layers top to bottom, public and staff surfaces
	@# apart, keys/ alone, no import cycles.
	$(BIN)/lint-imports --no-cache
	@# The real bandit beside ruff's S rules (config and skips: [tool.bandit] in pyproject.toml).
	@# Its "nosec encountered ..., but no failed test" warnings are a known false alarm on
	@# multi-line statements and nested calls (PyCQA/bandit#1041), so they are filtered out.
	$(BIN)/bandit -c pyproject.toml -r tipline keys triage -q 2> >(grep -v 'but no failed test' >&2)

# What the tests need from Debian (installed when root, with one apt-get update): Chromium for
# the browser tests, PostgreSQL's server, Redis and nginx (the deploy test runs the shipped
# nginx config in the foreground). No service is enabled or started: the tests
# start clusters of their own (tests/postgres_server.py).
system-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/redis-server ] || missing="$$missing redis-server"; \
	[ -x /usr/bin/ffmpeg ] || missing="$$missing ffmpeg"; \
	[ -x /usr/bin/pdftoppm ] || missing="$$missing poppler-utils"; \
	[ -x /usr/bin/bwrap ] || missing="$$missing bubblewrap"; \
	[ -x /usr/bin/exiftool ] || missing="$$missing libimage-exiftool-perl"; \
	[ -x /usr/bin/soffice ] || missing="$$missing libreoffice-writer-nogui libreoffice-calc-nogui"; \
	[ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	[ -x /usr/bin/openssl ] || missing="$$missing openssl"; \
	[ -x /usr/bin/curl ] || missing="$$missing curl"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		else echo "Missing:$$missing: run 'sudo apt-get install$$missing'"; exit 1; fi; \
	fi

# The suite runs twice: on SQLite and on a PostgreSQL cluster the fixtures start
# (tests/databases.py). tests/faults always runs on PostgreSQL whatever the pass, so only the
# PostgreSQL pass runs it, with the deploy path and scale-out; the browser tests (what a person
# clicks, the same on either database) run in the SQLite pass, on the database `make run` uses.
# A test that touches no database (no `databases` fixture) runs once, in the PostgreSQL pass
# (TIPLINE_DATABASE_FREE_PASS, tests/conftest.py): the two passes take about as long, so
# neither waits for the other. Lint and the SQLite pass run beside the PostgreSQL pass (much of
# each pass waits on servers and subprocesses, so two cores are kept busy); their output
# follows once it is done. Every part runs even when another fails; the exit code says if any did.
TEST_LOGS := instance/test-logs
test: venv system-deps
	@mkdir -p $(TEST_LOGS); rm -f $(TEST_LOGS)/*; status=0; \
	( $(MAKE) --no-print-directory lint > $(TEST_LOGS)/lint.out 2>&1; \
	  echo $$? > $(TEST_LOGS)/lint.rc ) & \
	( TIPLINE_TEST_DATABASE=sqlite TIPLINE_DATABASE_FREE_PASS=postgresql \
		$(BIN)/python -m pytest -q -p no:cacheprovider --ignore=tests/faults \
		--ignore=tests/test_deploy_path.py --ignore=tests/test_scale_out.py > $(TEST_LOGS)/sqlite.out 2>&1; \
	  echo $$? > $(TEST_LOGS)/sqlite.rc ) & \
	echo "== tests on PostgreSQL"; \
	TIPLINE_TEST_DATABASE=postgresql TIPLINE_DATABASE_FREE_PASS=postgresql \
		$(BIN)/python -m pytest -q -p no:cacheprovider --ignore-glob='tests/test_browser_*.py' || status=1; \
	wait; \
	echo "== lint (ruff, mypy, the layering contract, bandit)"; cat $(TEST_LOGS)/lint.out; \
	[ "$$(cat $(TEST_LOGS)/lint.rc)" = 0 ] || { echo "lint FAILED"; status=1; }; \
	echo "== tests on SQLite"; cat $(TEST_LOGS)/sqlite.out; \
	[ "$$(cat $(TEST_LOGS)/sqlite.rc)" = 0 ] || status=1; \
	exit $$status

# Every benchmark runs even when an earlier one misses its target; the exit code says if any did.
# Each one's output, exit code and run time go to $(BENCH_OUT); benchmarks/report.py then writes
# one table of figures, targets and ratios, with the machine, to docs/benchmarks.md
# (BENCH_NOTE="..." adds a line, e.g. about other load on the machine).
BENCH_OUT := instance/bench
bench: venv
	@rm -rf $(BENCH_OUT); mkdir -p $(BENCH_OUT); cat /proc/loadavg > $(BENCH_OUT)/loadavg.start; \
	failed=""; for script in $$($(BIN)/python benchmarks/report.py --list); do \
		name=$$(basename $$script .py); echo "== $$script"; start=$$SECONDS; \
		$(BIN)/python $$script 2>&1 | tee $(BENCH_OUT)/$$name.out; rc=$${PIPESTATUS[0]}; \
		echo $$rc > $(BENCH_OUT)/$$name.rc; echo $$((SECONDS - start)) > $(BENCH_OUT)/$$name.seconds; \
		[ $$rc = 0 ] || failed="$$failed $$script"; done; \
	$(BIN)/python benchmarks/report.py $(BENCH_OUT) --out docs/benchmarks.md; \
	if [ -n "$$failed" ]; then echo "missed a target or failed:$$failed"; exit 1; fi

# Security scans: bandit's totals, pip-audit over .venv, Wapiti against a running demo
# (anonymous and a logged-in officer). Writes docs/security-scan.md; fails on any medium or
# higher web finding that security/allowlist.toml does not explain. Wapiti lives in its own
# venv: its pins conflict with ours (its mitmproxy caps cryptography at 48.1).
AUDIT_VENV := .venv-audit
$(AUDIT_VENV)/.installed: $(AUDIT_LOCK)
	@[ -x $(AUDIT_VENV)/bin/python ] || $(PYTHON) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/python -m pip install --quiet --require-hashes -r $(AUDIT_LOCK)
	@touch $@

audit: venv $(AUDIT_VENV)/.installed
	$(BIN)/python security/audit.py --wapiti $(AUDIT_VENV)/bin/wapiti

clean:
	rm -rf $(VENV) $(AUDIT_VENV) instance .mypy_cache .ruff_cache build dist tipline.egg-info

# After changing UI strings: refresh the catalog, translate the new entries in
# tipline/web/translations/vi/LC_MESSAGES/messages.po, then compile.
translations: venv
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o tipline/web/translations/messages.pot .
	$(BIN)/pybabel update -i tipline/web/translations/messages.pot -d tipline/web/translations
	$(BIN)/pybabel compile -d tipline/web/translations
