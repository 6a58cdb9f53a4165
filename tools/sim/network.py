"""A `network` module for the MicroPython unix port: a simulated WiFi station interface.

The unix port has no `network`; with `MICROPYPATH=tools/sim:...` this file stands in for the
ESP32's. `WLAN(STA_IF)` behaves like the ESP32 one as far as the firmware uses it:
`active()`, `connect()`, `disconnect()`, `isconnected()`, `status()` (the ESP32 port's values:
1000 idle, 1010 got IP, 200 beacon timeout, 201 no AP found), `ifconfig()`; the same object
for every `WLAN(STA_IF)`; auto-reconnect when the access point comes back (the ESP32
default). Association is immediate and any password is accepted.

Tests and the simulator's control channel drive the simulated access point:

    sim_link(up)          the access point disappears (False) or comes back (True)

The simulated WiFi cannot break a TCP socket to 127.0.0.1, so the firmware must notice a
WiFi loss through `isconnected()` (the link does). Never shipped.

Written compactly (it shares the heap with the firmware): the access point is one list, the
status codes are private constants, one class; no AP interface, `scan()`, `config()`,
`status("rssi")`, password check or association delay (the firmware and its tests use none).
"""

from micropython import const

STA_IF = 0
_IDLE = const(1000)
_GOT_IP = const(1010)
_BEACON_TIMEOUT = const(200)
_NO_AP_FOUND = const(201)

_ap = [True]  # the access point: [up]
_sta = [None]  # the station interface: one object, as on the ESP32


def sim_link(up):
    """Make the access point disappear (False) or come back (True)."""
    _ap[0] = bool(up)
    sta = _sta[0]
    if sta is None:
        return
    if not up:
        if sta.st == _GOT_IP:
            sta.st = _BEACON_TIMEOUT
    elif sta.want and sta.on:
        sta.associate()  # the ESP32 reconnects by itself


def WLAN(interface=STA_IF):  # noqa: N802 - the ESP32 spelling
    """The station interface; the same object every time, as on the ESP32."""
    if interface != STA_IF:
        raise ValueError("only STA_IF is simulated")
    if _sta[0] is None:
        _sta[0] = _WLAN()
    return _sta[0]


class _WLAN:
    def __init__(self):
        self.on = False
        self.want = False  # connect() called and no disconnect(): auto-reconnect
        self.st = _IDLE

    def active(self, on=None):
        if on is None:
            return self.on
        self.on = bool(on)
        if not on:
            self.want = False
            self.st = _IDLE

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self.on:
            raise OSError("Wifi Not Started")
        self.want = True
        self.associate()

    def disconnect(self):
        self.want = False
        self.st = _IDLE

    def associate(self):
        self.st = _GOT_IP if _ap[0] else _NO_AP_FOUND

    def status(self):
        return self.st

    def isconnected(self):
        return self.on and _ap[0] and self.st == _GOT_IP

    def ifconfig(self, cfg=None):
        if cfg is not None:
            return None
        if self.isconnected():
            return ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")
        return ("0.0.0.0",) * 4
