"""A `network` module for the MicroPython unix port: a simulated WiFi station interface.

The unix port has no `network`; with `MICROPYPATH=tools/sim:...` this file stands in for the
ESP32's. `WLAN(STA_IF)` behaves like the ESP32 one as far as the firmware uses it:
`active()`, `connect()`, `disconnect()`, `isconnected()`, `status()`, `config()`,
`ifconfig()`, `scan()`; the same object for every `WLAN(STA_IF)`; auto-reconnect when the
access point comes back (the ESP32 default, `config(reconnects=N)`).

Tests and the simulator's control channel drive the simulated access point:

    sim_link(up)          the access point disappears (False) or comes back (True)
    sim_password(pw)      the password the access point wants (None: any)
    sim_connect_delay(ms) association time: status() is STAT_CONNECTING meanwhile
    sim_state()           dict: ap_up, connected, status, connect_calls

The simulated WiFi cannot break a TCP socket to 127.0.0.1, so the firmware must notice a
WiFi loss through `isconnected()` (the link does). Never shipped.
"""

from time import ticks_add, ticks_diff, ticks_ms

STA_IF = 0
AP_IF = 1

# the ESP32 port's status values
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204

_IP = ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")
_NO_IP = ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

_ap = {"up": True, "password": None, "delay_ms": 0, "ssid": "sim-ap"}
_interfaces = {}


def sim_link(up):
    """Make the access point disappear (False) or come back (True)."""
    _ap["up"] = bool(up)
    sta = _interfaces.get(STA_IF)
    if sta is not None:
        sta._ap_changed()


def sim_password(password):
    """The password the access point accepts; None accepts any."""
    _ap["password"] = password


def sim_connect_delay(ms):
    """How long association takes, in milliseconds."""
    _ap["delay_ms"] = int(ms)


def sim_state():
    sta = _interfaces.get(STA_IF)
    return {
        "ap_up": _ap["up"],
        "connected": bool(sta and sta.isconnected()),
        "status": sta.status() if sta else STAT_IDLE,
        "connect_calls": sta.connect_calls if sta else 0,
    }


def WLAN(interface=STA_IF):  # noqa: N802 - the ESP32 spelling
    """The station (or AP) interface; the same object every time, as on the ESP32."""
    if interface not in (STA_IF, AP_IF):
        raise ValueError("invalid interface")
    obj = _interfaces.get(interface)
    if obj is None:
        obj = _interfaces[interface] = _WLAN(interface)
    return obj


class _WLAN:
    def __init__(self, interface):
        self._if = interface
        self._active = False
        self._ssid = None
        self._key = None
        self._want = False      # connect() called and no disconnect(): auto-reconnect
        self._status = STAT_IDLE
        self._ready_at = 0
        self._config = {"reconnects": -1, "hostname": "esp32-charger",
                        "mac": b"\x24\x0a\xc4\x00\x00\x01", "ssid": ""}
        self.connect_calls = 0

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        if not self._active:
            self._want = False
            self._status = STAT_IDLE

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")
        self.connect_calls += 1
        if ssid is not None:
            self._ssid = ssid
            self._key = key
        self._want = True
        self._try_associate()

    def disconnect(self):
        self._want = False
        self._status = STAT_IDLE

    def _try_associate(self):
        if not _ap["up"]:
            self._status = STAT_NO_AP_FOUND
        elif _ap["password"] is not None and self._key != _ap["password"]:
            self._status = STAT_WRONG_PASSWORD
            self._want = False
        else:
            self._status = STAT_CONNECTING
            self._ready_at = ticks_add(ticks_ms(), _ap["delay_ms"])

    def _ap_changed(self):
        if not _ap["up"]:
            if self._status in (STAT_GOT_IP, STAT_CONNECTING):
                self._status = STAT_BEACON_TIMEOUT
        elif self._want and self._active and self._config["reconnects"] != 0:
            self._try_associate()   # the ESP32 reconnects by itself

    def status(self, param=None):
        if param == "rssi":
            return -55 if self.isconnected() else 0
        if param is not None:
            raise ValueError("unknown status parameter")
        if self._status == STAT_CONNECTING and ticks_diff(ticks_ms(), self._ready_at) >= 0:
            self._status = STAT_GOT_IP
        return self._status

    def isconnected(self):
        return self._active and _ap["up"] and self.status() == STAT_GOT_IP

    def config(self, *args, **kwargs):
        if args:
            if len(args) != 1 or kwargs:
                raise TypeError("config() takes one parameter name or keyword arguments")
            name = args[0]
            if name == "ssid":
                return self._ssid or ""
            if name not in self._config:
                raise ValueError("unknown config param")
            return self._config[name]
        for name, value in kwargs.items():
            if name not in self._config and name not in ("txpower", "pm", "dhcp_hostname"):
                raise ValueError("unknown config param")
            self._config[name] = value
        return None

    def ifconfig(self, cfg=None):
        if cfg is not None:
            return None
        return _IP if self.isconnected() else _NO_IP

    def scan(self):
        if not self._active:
            raise OSError("Wifi Not Started")
        if not _ap["up"]:
            return []
        return [(_ap["ssid"].encode(), b"\x00\x11\x22\x33\x44\x55", 6, -55, 3, False)]
