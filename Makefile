# Two entry points for a fresh machine: `make run` (the whole pipeline on embedded defaults) and
# `make test` (install, lint, test). Everything is installed into ./.venv with pip.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.installed
REQS := requirements/base.txt requirements/dev.txt requirements/demo.txt pyproject.toml
RUNS ?= runs
export PYOPENGL_PLATFORM ?= egl
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export MKL_NUM_THREADS ?= 1
export NUMEXPR_NUM_THREADS ?= 1

.PHONY: run test lint install system-deps unit clean

$(STAMP): $(REQS)
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	# torch is pinned in the same command so that pip never pulls a CUDA build.
	$(PIP) install -q -r requirements/base.txt -r requirements/dev.txt -r requirements/demo.txt
	# pyrender pins PyOpenGL==3.1.0, which lacks what OSMesa needs; PyOpenGL 3.1.10 comes from base.txt.
	$(PIP) install -q --no-deps pyrender==0.1.45
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@bash tools/install_system_deps.sh

lint: $(STAMP)
	.venv/bin/ruff check panst3r_core datasets flows tests gradio_panst3r.py
	.venv/bin/lint-imports

test: system-deps $(STAMP) lint
	.venv/bin/python -m pytest -q

run: system-deps $(STAMP)
	.venv/bin/panst3r run-all --runs $(RUNS)

clean:
	rm -rf $(RUNS)
