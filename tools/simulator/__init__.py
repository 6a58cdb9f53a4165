"""The CPython simulated charger: a stand-in for the ESP32 that speaks the publisher side of the
protocol (`python -m tools.simulator`).

Modules: `clock` (simulated time), `curve` (the car and the meter), `outbox` (bounded queue of
what waits for the link), `charger` (one charger's protocol rules, no I/O), `link`
(reconnecting WebSocket), `events` (printed, waitable event lines), `commands` (the command
language), `fleet` (several chargers and command execution), `cli` (arguments and modes).
"""
