"""Benchmark commands: `make bench-server` (the server under load) and `make bench-firmware`.

- `server_load`    the command: starts the target processes and the load generators, measures,
                   prints one JSON line
- `loadgen`        one load-generator process: many simulated chargers and dashboards
- `baseline_relay` the bare websockets relay the server is compared with
- `targets`        starting and stopping the server or the relay; provisioning its database
- `procstat`       CPU time and RSS of a process, read from /proc
- `summary`        pure arithmetic: percentiles, rates, the result line
- `firmware_memory` `make bench-firmware`: the firmware's heap on the MicroPython unix port
- `offline_lists`  `offline_candidates` (the offline card list's query) with and without
                   the index sessions_by_card, on SQLite
"""
