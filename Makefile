# Two commands matter on a fresh clone: `make run` and `make test`.
# Both create .venv on first use and install the pinned dependencies.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format venv wasm32 ocpp-rpc clean bench-server cluster bench-cluster sim firmware firmware-bundle config flash repl sim-charger bench-firmware soak chaos

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## The 32-bit MicroPython (WebAssembly port, pinned in tools/wasm/package-lock.json) that
## `make firmware` and the tests measure and run the firmware on; needs Node.js and npm.
WASM_STAMP := tools/wasm/node_modules/.package-lock.json
wasm32: $(WASM_STAMP)

$(WASM_STAMP): tools/wasm/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js (18 or newer) for the 32-bit MicroPython"; exit 2; }
	cd tools/wasm && npm ci --no-audit --no-fund
	touch $(WASM_STAMP)

## The OCPP 1.6J charge point the tests drive against the server (npm ocpp-rpc, pinned in
## tests/ocpp/package-lock.json); needs Node.js and npm.
OCPP_STAMP := tests/ocpp/node_modules/.package-lock.json
ocpp-rpc: $(OCPP_STAMP)

$(OCPP_STAMP): tests/ocpp/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js (18 or newer) for the OCPP tests"; exit 2; }
	cd tests/ocpp && npm ci --no-audit --no-fund
	touch $(OCPP_STAMP)

## Start the server on 0.0.0.0:3000 (or PORT: make run PORT=3100; PORT in .env works too) with
## the demo station and card (data/evse.sqlite3); prints the dashboard URL with a token and the
## simulator, wscat and sim-charger commands with their credentials, for that port.
run: venv
	$(PY) -m server --demo $(if $(PORT),--port $(PORT))

## Run the whole test suite (server, simulator, firmware on MicroPython, browser), one file per
## worker (pytest-xdist): the tests mostly wait on sockets and subprocesses, so 4 workers fit 2
## cores. One worker: make test TEST_WORKERS=0.
TEST_WORKERS ?= 4
test: venv wasm32 ocpp-rpc
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

## Checks (.ci/run runs them before `make test`; a few seconds): ruff's lint and format check,
## mypy strict on the pure server modules, import-linter's layering contracts (all configured in
## pyproject.toml; firmware/ is on the path for the contracts over its `charger` package).
## `make format` applies ruff's fixes and formatting (then `make lint` names what is left).
LINT_PATHS := server tools tests firmware
lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy
	PYTHONPATH=firmware $(VENV)/bin/lint-imports --no-cache

format: venv
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

## Load benchmark: the server vs a bare websockets relay, about a minute, one JSON line.
## Parameters: make bench-server ARGS="--chargers 3000 --rate 1 --duration 30" (see --help).
bench-server: venv
	$(PY) -m tools.bench.server_load $(ARGS)

## The fleet demo (issue 14): a throwaway PostgreSQL and nats-server, N server processes (3) and
## HAProxy in front on 0.0.0.0:3000 (or PORT) for chargers and dashboards; prints the URLs
## (dashboard with a token, each process, HAProxy's stats) and stops everything on Ctrl-C.
## make cluster N=2 PORT=3100. Needs Debian's postgresql, nats-server and haproxy (.ci/run).
N ?= 3
cluster: venv
	$(PY) -m tools.cluster --processes $(N) --port $(or $(PORT),3000) $(ARGS)

## The load benchmark on 1, 2 and 3 processes of a fleet behind HAProxy (same method and load
## generator as bench-server); prints a table and one JSON line. About 2 minutes.
## make bench-cluster ARGS="--chargers 600 --rate 2 --duration 20 --processes 1,2,3" (see --help).
bench-cluster: venv
	$(PY) -m tools.bench.cluster_load $(ARGS)

## The CPython simulated charger: station 1 taps the demo card (start `make run` first; it uses
## the demo station's key that `make run` wrote to $(DEMO_KEY)). Same PORT as make run:
## make sim PORT=3100 (or SERVER_URL=ws://HOST:PORT/ws). Type commands (help, tap, stop,
## emergency, drop, quit, ...); more options: make sim ARGS="--speed 2" (faster than 2-3x the meter looks like more than the station's 22 kW and the server flags it).
sim: venv
	$(PY) -m tools.simulator --url $(SERVER_URL) --station $(STATION) --card VIRTUAL-1-A4F2E8 --token="$(TOKEN)" $(ARGS)

# PORT is the server's TCP port (make run, sim, sim-charger); DEVICE the board's serial port.
SERVER_URL ?= ws://127.0.0.1:$(or $(PORT),3000)/ws
STATION ?= 1
DEMO_KEY := data/station-1.key
TOKEN ?= $(shell cat $(DEMO_KEY) 2>/dev/null)

## --- Firmware (ESP32, MicroPython) ---------------------------------------------------------
DEVICE ?= /dev/ttyUSB0
TIME_SCALE ?= 1
SIM_CONFIG ?= firmware-build/sim-config.json
# refuse a serial port given as PORT (its old name) before anything is compiled
define check_device
	@case "$(PORT)" in /dev/*|COM*) echo "PORT is the server's TCP port; name the serial port DEVICE: make $@ DEVICE=$(PORT)" >&2; exit 2;; esac
	@test -e "$(DEVICE)" || { ports=$$(ls /dev/ttyUSB* /dev/ttyACM* /dev/cu.usb* 2>/dev/null | tr '\n' ' '); echo "no board at $(DEVICE): connect the ESP32 by USB, or name its serial port: make $@ DEVICE=/dev/ttyACM0 (serial ports here: $${ports:-none})" >&2; exit 2; }
endef

## Compile firmware/ with mpy-cross into firmware-build/ and print a size report (each module's
## resident heap on the 64-bit unix port and on the 32-bit WebAssembly port).
## Without npm the report has no 32-bit column (flashing needs no Node.js).
firmware: venv
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory -s wasm32; \
	 else echo "no npm: the size report has no 32-bit column (install Node.js 18+)"; fi
	$(PY) -m tools.firmware_build

## The over-the-air update bundle: make firmware, then pack firmware-build/charger/*.mpy into
## firmware-build/bundle-<VERSION>.bin (default version: git describe); copy it into the
## server's FIRMWARE_DIR (default data/firmware/). Format: docs/architecture.md.
firmware-bundle: firmware
	$(PY) -m tools.firmware_bundle $(if $(VERSION),--version $(VERSION))

## Write firmware/config.json: prompts on a terminal (the WiFi password is not echoed), or takes
## WIFI_SSID WIFI_PASSWORD SERVER_URL STATION TOKEN PINS; without a terminal every required
## value must be given. Checks pins against the ESP32, the URL and the SSID.
CONFIG_OUT ?= firmware/config.json
config: venv
	@$(PY) -m tools.firmware_config --out $(CONFIG_OUT)

## Copy the compiled firmware and config.json to the board: make flash DEVICE=/dev/ttyUSB0
flash: venv
	$(check_device)
	@test -f firmware/config.json || { echo "no firmware/config.json: run make config first" >&2; exit 2; }
	$(PY) -m tools.firmware_build
	cd firmware-build && ../$(VENV)/bin/mpremote connect $(DEVICE) fs cp -r charger boot.py main.py otaboot.py config.json : + reset

## MicroPython REPL on the board: make repl DEVICE=/dev/ttyUSB0
repl: venv
	$(check_device)
	$(VENV)/bin/mpremote connect $(DEVICE) repl

## The real firmware on the unix port with emulated hardware against SERVER_URL (or PORT),
## STATION, TOKEN; type control commands on stdin (help, tap 04A1B2C3, press stop, status,
## quit). The meter runs in real time unless TIME_SCALE=10 (energy 10x faster); a refused
## station key (close 4003/4005) ends it with one line and status 3.
sim-charger: venv
	@mkdir -p $(dir $(SIM_CONFIG))
	@$(PY) -m tools.firmware_config --out $(SIM_CONFIG) --no-input --ssid sim-ap --password "" --server-url $(SERVER_URL) --station $(STATION) --token="$(TOKEN)"
	@$(PY) -m tools.sim_charger $(SIM_CONFIG) --power 2000 --time-scale $(TIME_SCALE)

## Soak (not in CI): 2,000 chargers send metrics for 10 minutes; prints the server's RSS at start
## and end (growth must stay under 5 %) and the error count (must be 0). make soak ARGS="--minutes 3"
soak: venv
	$(PY) -m tools.soak $(ARGS)

## Delivery under faults at full length (make test runs the same at 1/5 of the durations and
## timers): the real firmware through tools/faultproxy.py to a `python -m server` subprocess;
## link dropped 20 s, blackholed 30 s, server SIGKILLed and restarted, 3 times each (the three
## concurrently, ~3 min). Prints stored/sent readings and billed/meter Wh per fault kind.
chaos: venv
	CHAOS_SCALE=1 $(PY) -m pytest tests/firmware/test_delivery_under_faults.py -q -s $(ARGS)

## Firmware memory benchmark on the unix port (scripted scenario), ends with one JSON line.
bench-firmware: venv
	$(PY) -m tools.bench.firmware_memory $(ARGS)

clean:
	rm -rf $(VENV) firmware-build test-artifacts tools/wasm/node_modules
