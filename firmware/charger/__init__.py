"""The charger firmware package: pure state machine, messages, drivers and the app that wires them."""
