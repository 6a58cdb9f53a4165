"""Configuration: load `config.json`, fill defaults, validate every value.

`validate(raw)` is pure: it returns a complete config dict or raises ConfigError with a
message naming the bad key. `load(path)` reads the file. Keys: see `config.example.json`.
"""

import json


class ConfigError(ValueError):
    pass


DEFAULT_PINS = {
    "relay": 26, "relay_active_high": True, "stop": 32, "emergency": 33, "led": 2,
    "spi_id": 1, "sck": 18, "mosi": 23, "miso": 19, "rc522_cs": 5, "rc522_rst": 22,
    "uart_id": 2, "pzem_tx": 17, "pzem_rx": 16,
}

DEFAULTS = {
    "server_url": None, "station": None, "token": "", "ca_cert": None,
    "ping_interval_s": 20, "backoff_max_s": 30,
    "metrics_interval_s": 3, "meter_interval_s": 1, "offline_limit_s": 600,
    "start_timeout_s": 10, "same_card_s": 3, "meter_silence_s": 5, "reset_hold_s": 5,
    "watchdog_s": 30, "ntp_host": "pool.ntp.org", "pzem_address": 0xF8,
}

_NUMBERS = (
    ("ping_interval_s", 1, 3600), ("backoff_max_s", 1, 3600),
    # metrics at least 1 s apart: `ts` has 1 s resolution and the server ignores a repeated ts
    ("metrics_interval_s", 1, 3600), ("meter_interval_s", 0.05, 60),
    ("offline_limit_s", 0, 86400), ("start_timeout_s", 1, 600), ("same_card_s", 0, 600),
    ("meter_silence_s", 0.1, 600), ("reset_hold_s", 0.1, 60), ("watchdog_s", 0, 600),
)


def _number(cfg, key, lo, hi):
    val = cfg[key]
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not lo <= val <= hi:
        raise ConfigError("%s must be a number from %s to %s" % (key, lo, hi))


def validate(raw):
    """Return the full config (defaults filled) or raise ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError("config must be a JSON object")
    cfg = dict(DEFAULTS)
    cfg.update(raw)
    wifi = cfg.get("wifi")
    if wifi is not None:
        if not isinstance(wifi, dict) or not isinstance(wifi.get("ssid"), str):
            raise ConfigError("wifi must be {\"ssid\": ..., \"password\": ...}")
        if not isinstance(wifi.get("password", ""), str):
            raise ConfigError("wifi.password must be a string")
    url = cfg["server_url"]
    if not isinstance(url, str) or not (url.startswith("ws://") or url.startswith("wss://")):
        raise ConfigError("server_url must start with ws:// or wss://")
    st = cfg["station"]
    if isinstance(st, bool) or not isinstance(st, int) or st < 1:
        raise ConfigError("station must be a positive integer")
    if not isinstance(cfg["token"], str):
        raise ConfigError("token must be a string")
    if cfg["ca_cert"] is not None and not isinstance(cfg["ca_cert"], str):
        raise ConfigError("ca_cert must be a file path or null")
    for key, lo, hi in _NUMBERS:
        _number(cfg, key, lo, hi)
    addr = cfg["pzem_address"]
    if isinstance(addr, bool) or not isinstance(addr, int) or not 1 <= addr <= 0xF8:
        raise ConfigError("pzem_address must be 1..247 or 248 (0xF8, the only meter)")
    pins = dict(DEFAULT_PINS)
    given = cfg.get("pins") or {}
    if not isinstance(given, dict):
        raise ConfigError("pins must be an object")
    for key in given:
        if key not in DEFAULT_PINS:
            raise ConfigError("pins.%s is not a known pin" % key)
    pins.update(given)
    for key in pins:
        val = pins[key]
        if key == "relay_active_high":
            if not isinstance(val, bool):
                raise ConfigError("pins.relay_active_high must be true or false")
        elif isinstance(val, bool) or not isinstance(val, int) or not 0 <= val <= 39:
            raise ConfigError("pins.%s must be a GPIO number 0..39" % key)
    cfg["pins"] = pins
    return cfg


def load(path):
    """Read and validate a config file."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError:
        raise ConfigError("cannot read %s (run `make config`)" % path)
    except ValueError:
        raise ConfigError("%s is not valid JSON" % path)
    return validate(raw)
