"""The CPython simulated charger: a stand-in for the ESP32 that speaks the publisher side of the
protocol (`python -m tools.simulator`) by running the firmware's own rules.

Modules: `firmware` (imports the firmware's ChargerState, messages and Outbox under CPython),
`clock` (simulated time), `curve` (the car and the meter), `charger` (one charger: the
firmware's state machine driven by the simulated hardware, no I/O), `link` (reconnecting
WebSocket with acknowledged delivery), `events` (printed, waitable event lines), `commands`
(the command language), `fleet` (several chargers and command execution), `cli` (arguments
and modes).
"""
