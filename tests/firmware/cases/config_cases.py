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


def case_a_list_of_server_urls_replaces_server_url():
    raw = dict(GOOD)
    del raw["server_url"]
    raw["server_urls"] = ["ws://10.0.0.1:3000/ws", "wss://10.0.0.2/ws"]
    assert validate(raw)["server_urls"] == ["ws://10.0.0.1:3000/ws", "wss://10.0.0.2/ws"]
    assert "without server_url" in _error(_with(server_urls=["ws://10.0.0.1:3000/ws"]))
    del raw["server_urls"]
    for bad in ([], "ws://x/ws", ["ws://x/ws"] * 9):
        raw["server_urls"] = bad
        assert "server_urls must be a list of 1 to 8 URLs" in _error(raw)
    raw["server_urls"] = ["ws://x/ws", "http://y/ws"]
    assert "server_url(s) must start with ws:// or wss://" in _error(raw)
    raw["server_urls"] = ["ws://x/ws", 5]
    assert "server_url(s) must start" in _error(raw)


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


def case_keys_the_link_defaults_are_checked_when_given_and_left_to_the_link_otherwise():
    assert "ping_interval_s" in _error(_with(ping_interval_s=0))
    assert "backoff_max_s" in _error(_with(backoff_max_s="30"))
    assert "token" in _error(_with(token=5))
    assert "ca_cert" in _error(_with(ca_cert=5))
    cfg = validate(_with(ping_interval_s=15))
    assert cfg["ping_interval_s"] == 15
    # not given: the link applies its own defaults (the same numbers: 20 s, 30 s)
    assert "ping_interval_s" not in validate(GOOD) and "backoff_max_s" not in validate(GOOD)


def case_the_links_optional_keys_pass_through():
    cfg = validate(_with(ping_timeout_s=5, max_message=2048))
    assert cfg["ping_timeout_s"] == 5 and cfg["max_message"] == 2048


def case_every_documented_default_is_filled():
    cfg = validate(GOOD)
    assert [
        cfg[k]
        for k in (
            "metrics_interval_s",
            "meter_interval_s",
            "offline_limit_s",
            "start_timeout_s",
            "same_card_s",
            "meter_silence_s",
            "reset_hold_s",
            "watchdog_s",
            "ntp_host",
            "pzem_address",
        )
    ] == [3, 1, 600, 10, 3, 5, 5, 30, "pool.ntp.org", 0xF8]
    assert cfg["pins"] == {
        "relay": 26,
        "relay_active_high": True,
        "stop": 32,
        "emergency": 33,
        "led": 2,
        "spi_id": 1,
        "sck": 18,
        "mosi": 23,
        "miso": 19,
        "rc522_cs": 5,
        "rc522_rst": 22,
        "uart_id": 2,
        "pzem_tx": 17,
        "pzem_rx": 16,
    }


def case_more_bad_values_name_the_key():
    assert "ntp_host" in _error(_with(ntp_host=None))
    assert "ntp_host" in _error(_with(ntp_host=""))
    assert "wifi.password" in _error(_with(wifi={"ssid": "x", "password": 1}))
    assert "pins" in _error(_with(pins=[1]))
    assert "pins" in _error(_with(pins=[])) and "pins" in _error(_with(pins=False))
    assert validate(_with(pins=None))["pins"]["relay"] == 26  # null: the README wiring
    assert "pins.sck" in _error(_with(pins={"sck": True}))
    assert "meter_interval_s" in _error(_with(meter_interval_s=0.01))
    assert "server_url" in _error({"station": 1})
    assert "station" in _error({"server_url": "wss://h/ws"})


def case_validating_leaves_the_callers_dict_as_it_was():
    raw = _with(pins={"relay": 4})
    validate(raw)
    assert raw == _with(pins={"relay": 4})
