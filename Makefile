# Developer entry points. Everything runs from the project's own virtualenv (.venv), created on demand;
# `pip install -e '.[test]'` reruns only when the packaging changed (setup.cfg, pyproject.toml, or a
# new top-level package: the editable install maps package names to folders when it is installed).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test migrate clean bench

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg pyproject.toml $(wildcard */__init__.py) | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]'
	touch $@

run: install
	$(VENV)/bin/cfmp up

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks (bench/, issue 7): real processes on scratch MariaDB databases (cfmp_test_bench_*, via the
# cfmp_test user) and a private Redis key prefix; wrk is installed from Debian when missing. bench.chaos
# starts private redis-server and mariadbd instances of its own (it restarts them). Results in
# bench/results/. Not part of `make test`.
bench: install
	$(PY) -m pip install --disable-pip-version-check -q -r bench/requirements.txt
	$(PY) -m bench.api $(BENCH_API_ARGS)
	$(PY) -m bench.workflow $(BENCH_WORKFLOW_ARGS)
	$(PY) -m bench.scaling $(BENCH_SCALING_ARGS)
	$(PY) -m bench.chaos $(BENCH_CHAOS_ARGS)

migrate: install
	$(VENV)/bin/cfmp db upgrade

clean:
	rm -rf var logs
