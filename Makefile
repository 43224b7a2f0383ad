# slt-deploy: every target bootstraps the virtualenv first (a fast no-op once done).
#   make demo        end-to-end demo with the embedded data set
#   make test        the full test suite, slow tests included (this is what CI runs)
#   make test-fast   the suite without tests marked `slow`
#   make bench       every benchmark in benchmarks/ (JSON + Markdown into benchmarks/results/)
#   make lint        ruff, if installed
#   make clean       build/test caches;  make distclean  also removes the virtualenv

SHELL := bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help bootstrap demo test test-fast bench lint clean distclean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

bootstrap:
	@SLT_VENV="$(abspath $(VENV))" bash tools/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/slt demo

test: bootstrap
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: bootstrap
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

RESULTS := benchmarks/results

bench: bootstrap
	$(PY) benchmarks/runtime.py --json $(RESULTS)/runtime.json --markdown $(RESULTS)/runtime.md
	$(PY) benchmarks/c_export.py --json $(RESULTS)/c_export.json --markdown $(RESULTS)/c_export.md
	$(PY) benchmarks/rate_encoding.py --json $(RESULTS)/rate_encoding.json --markdown $(RESULTS)/rate_encoding.md
	$(PY) benchmarks/search.py --out $(RESULTS)
	$(PY) benchmarks/search_scaling.py --out $(RESULTS)

lint:
	@if [ -x $(VENV)/bin/ruff ]; then $(VENV)/bin/ruff check .; \
	elif command -v ruff >/dev/null; then ruff check .; \
	else echo "ruff not installed (make bootstrap installs it)"; fi

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
