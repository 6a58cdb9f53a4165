"""Cases for config validation; run under CPython and MicroPython."""

import json

from charger.config import ConfigError, load, validate

GOOD = {"server_url": "ws://192.168.1.10:3000/ws", "station": 1, "token": "t"}


def _error(raw):
    try:
        validate(raw)
    except ConfigError as e:
        return str(e)
    raise AssertionError("accepted %r" % (raw,))


def _with(**kw):
    raw = dict(GOOD)
    raw.update(kw)
    return raw


def case_minimal_config_gets_the_documented_defaults():
    cfg = validate(GOOD)
    assert cfg["metrics_interval_s"] == 3 and cfg["offline_limit_s"] == 600
    assert cfg["pins"]["relay"] == 26 and cfg["pins"]["relay_active_high"] is True


def case_example_config_is_valid():
    with open("firmware/config.example.json") as f:
        cfg = validate(json.load(f))
    assert cfg["station"] == 1 and cfg["wifi"]["ssid"]


def case_bad_values_name_the_key():
    assert "server_url" in _error(_with(server_url="http://x/ws"))
    assert "station" in _error(_with(station=0))
    assert "station" in _error(_with(station=True))
    assert "station" in _error(_with(station="1"))
    assert "metrics_interval_s" in _error(_with(metrics_interval_s=-1))
    assert "metrics_interval_s" in _error(_with(metrics_interval_s="3"))
    assert "pins.relay" in _error(_with(pins={"relay": 99}))
    assert "pins.buzzer" in _error(_with(pins={"buzzer": 4}))
    assert "relay_active_high" in _error(_with(pins={"relay_active_high": 1}))
    assert "wifi" in _error(_with(wifi="ssid"))
    assert "pzem_address" in _error(_with(pzem_address=300))
    assert "object" in _error([1, 2])


def case_pins_override_only_what_is_given():
    cfg = validate(_with(pins={"relay": 4, "relay_active_high": False}))
    assert cfg["pins"]["relay"] == 4 and cfg["pins"]["relay_active_high"] is False
    assert cfg["pins"]["stop"] == 32


def _load_error(path):
    try:
        load(path)
    except ConfigError as e:
        return str(e)
    raise AssertionError("loaded %s" % path)


def case_missing_or_broken_file_is_a_clear_error():
    assert "make config" in _load_error("no/such/config.json")
    assert "JSON" in _load_error("firmware/main.py")
