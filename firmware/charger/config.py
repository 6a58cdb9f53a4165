"""Configuration: load `config.json`, fill defaults, validate every value.

`validate(raw)` is pure: it returns the config dict the firmware reads, or raises ConfigError
(which is ValueError) with a message naming the bad key. `load(path)` reads the file. Keys and
defaults: see `config.example.json` and the README.

The firmware loads this module once at boot and then forgets it, so its code goes back to the
heap; what stays is the returned dict and every identifier or short string (10 characters or
fewer) it interned, for ever (MicroPython's qstr pool). Hence: no exception class, no
module-level tables or helpers (the defaults and ranges are constants inside `validate()`),
one loop over one table for the numbers, and the default keys written as keyword arguments:
interned names (~30 B each, shared with every later module and with the keys json reads)
instead of a 64-byte string object per key in the kept dict. The returned dict holds what
the firmware reads: the keys the link reads with identical defaults of its own (`token`,
`ca_cert`, `ping_interval_s`, `backoff_max_s`) are validated when given, not filled in.
Unknown keys pass through (the link's optional keys, README). `validate()` does not change
the dict it is given.
"""

import json

ConfigError = ValueError  # the name callers catch; a class of its own would cost RAM


def validate(raw):
    """Return the config (defaults filled) or raise ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError("config must be a JSON object")
    # The defaults, written as keyword arguments: each key is then interned once (~30 B in
    # the qstr pool) instead of being a 64-byte string object the kept dict holds for ever,
    # and the same names read from config.json reuse it. (They must come before any string
    # literal of the same text in this file: mpy-cross then makes that literal a qstr too.)
    cfg = dict(
        metrics_interval_s=3,
        meter_interval_s=1,
        offline_limit_s=600,
        start_timeout_s=10,
        same_card_s=3,
        meter_silence_s=5,
        reset_hold_s=5,
        watchdog_s=30,
        ntp_host="pool.ntp.org",
        pzem_address=0xF8,
    )
    pins = dict(
        relay=26,
        relay_active_high=True,
        stop=32,
        emergency=33,
        led=2,
        spi_id=1,
        sck=18,
        mosi=23,
        miso=19,
        rc522_cs=5,
        rc522_rst=22,
        uart_id=2,
        pzem_tx=17,
        pzem_rx=16,
    )  # README wiring; overridden by what "pins" gives below
    cfg.update(raw)
    # key, lowest, highest; ping_interval_s and backoff_max_s are not filled in: the link has
    # the same defaults
    for key, lo, hi in (
        ("ping_interval_s", 1, 3600),
        ("backoff_max_s", 1, 3600),
        # metrics at least 1 s apart: `ts` has 1 s resolution and the server ignores a repeated ts
        ("metrics_interval_s", 1, 3600),
        ("meter_interval_s", 0.05, 60),
        ("offline_limit_s", 0, 86400),
        ("start_timeout_s", 1, 600),
        ("same_card_s", 0, 600),
        ("meter_silence_s", 0.1, 600),
        ("reset_hold_s", 0.1, 60),
        ("watchdog_s", 0, 600),
    ):
        if key in cfg:
            val = cfg[key]
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not lo <= val <= hi:
                raise ConfigError("%s must be a number from %s to %s" % (key, lo, hi))
    wifi = raw.get("wifi")
    if wifi is not None:
        if not isinstance(wifi, dict) or not isinstance(wifi.get("ssid"), str):
            raise ConfigError('wifi must be {"ssid": ..., "password": ...}')
        if not isinstance(wifi.get("password", ""), str):
            raise ConfigError("wifi.password must be a string")
    url = raw.get("server_urls")  # several servers, tried in turn (failover, no balancer)
    if url is None:
        url = (raw.get("server_url"),)
    elif "server_url" in raw or not isinstance(url, list) or not 0 < len(url) < 9:
        raise ConfigError("server_urls must be a list of 1 to 8 URLs, without server_url")
    for val in url:
        if not isinstance(val, str) or not (val.startswith("ws://") or val.startswith("wss://")):
            raise ConfigError("server_url(s) must start with ws:// or wss://")
    val = raw.get("station")
    if isinstance(val, bool) or not isinstance(val, int) or val < 1:
        raise ConfigError("station must be a positive integer")
    if not isinstance(raw.get("token", ""), str):
        raise ConfigError("token must be a string")
    val = raw.get("ca_cert")
    if val is not None and not isinstance(val, str):
        raise ConfigError("ca_cert must be a file path or null")
    val = cfg["ntp_host"]
    if not isinstance(val, str) or not val:
        raise ConfigError("ntp_host must be a host name")
    val = cfg["pzem_address"]
    if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= 0xF8:
        raise ConfigError("pzem_address must be 1..247 or 248 (0xF8, the only meter)")
    given = raw.get("pins")
    if given is None:  # absent or null: the README wiring
        given = {}
    if not isinstance(given, dict):  # also [], false, 0: not taken for "no pins"
        raise ConfigError("pins must be an object")
    for key in given:
        if key not in pins:
            raise ConfigError("pins.%s is not a known pin" % key)
        val = given[key]
        if key == "relay_active_high":
            if not isinstance(val, bool):
                raise ConfigError("pins.relay_active_high must be true or false")
        elif isinstance(val, bool) or not isinstance(val, int) or not 0 <= val <= 39:
            raise ConfigError("pins.%s must be a GPIO number 0..39" % key)
        pins[key] = val
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
