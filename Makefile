# Two commands matter on a fresh clone: `make run` and `make test`.
# Both create .venv on first use and install the pinned dependencies.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test venv clean bench-server

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start the server on 0.0.0.0:3000 with the demo station and card (data/evse.sqlite3).
run: venv
	$(PY) -m server --demo

## Run the whole test suite (server, simulator, firmware on MicroPython, browser).
test: venv
	$(PY) -m pytest

## Load benchmark: the server vs a bare websockets relay, about a minute, one JSON line.
## Parameters: make bench-server ARGS="--chargers 3000 --rate 1 --duration 30" (see --help).
bench-server: venv
	$(PY) -m tools.bench.server_load $(ARGS)

clean:
	rm -rf $(VENV) firmware-build test-artifacts
