# vertebra: the two commands of the README are `make reproduce` and `make test`.
# Everything runs in a local virtual environment (.venv) that the first target creates.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SCALE ?= quick
ROWS ?= all
# rows run at once (default: every core); each notebook kernel uses one thread
JOBS ?=
# FORCE=1 re-runs notebooks whose code and parameters did not change
FORCE ?=
STAMP := $(VENV)/.installed
# idle torch/OpenMP threads sleep instead of spinning: with several jobs on 2 cores, spinning threads
# made training steps 4-14x slower
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install test test-fast reproduce book bench clean-cache real-ct

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first: an unpinned torch would pull CUDA packages
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[book,dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider

test-all: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

reproduce: $(STAMP)
	$(PY) -m vertebra.cli reproduce --scale $(SCALE) --rows $(ROWS) $(if $(JOBS),--jobs $(JOBS)) $(if $(FORCE),--force) $(if $(DRY_RUN),--dry-run)

book: $(STAMP)
	$(PY) -m vertebra.cli book

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

real-ct: $(STAMP)
	$(PY) -m vertebra.cli fetch-real-ct

clean-cache:
	rm -rf $${VERTEBRA_CACHE:-$$HOME/.cache/vertebra}
