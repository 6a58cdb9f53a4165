"""The link to the server: WiFi, the publisher WebSocket, reconnects, status and the outbox.

Owns the connection's life: WiFi up (`network.WLAN(STA_IF)`), connect to
`server_url?role=publisher&estacionId=N&token=T`, then send the handler's
`status_messages()` (the charger's physical truth) FIRST, report the link up, replay the
outbox in order and keep draining it as the app puts entries (`notify()` wakes the link),
hand every received message to `handler.on_message(dict)` and answer `sync_request` with
the status messages again. Any failure (server gone, close code, keepalive timeout, WiFi
lost) reports the link down and reconnects forever with exponential backoff and jitter.

An outbox entry leaves the outbox only when delivery is confirmed: after a batch is written
the link pings, and the server's pong (which follows its reading of the batch) confirms it.
A half-open link that swallowed frames therefore loses nothing: after the reconnect the
unconfirmed entries are sent again (the server ignores a reading with a `ts` it already
has, and a repeated `stop` is harmless).

Config keys (the parsed config dict): `server_url`, `station`, `token`, `ca_cert`,
`wifi` ({ssid, password} or None: the network is managed elsewhere and not watched),
`ping_interval_s` (20), `backoff_max_s` (30); optional with defaults: `ping_timeout_s` (10),
`backoff_min_s` (1), `connect_timeout_s` (10), `wifi_timeout_s` (20), `max_message` (1024:
the server's messages to a charger are a few hundred bytes at most).
"""

import asyncio
import random
import sys
from time import ticks_diff, ticks_ms

from micropython import const

from charger import forget, messages, wsclient

# close codes after which retrying soon cannot help (configuration problems): wait long
_CONFIG_CLOSE_CODES = (4001, 4003, 4004, 4005, 4006)
_WIFI_POLL_MS = const(250)
_WIFI_WATCH_MS = const(1000)
_BATCH = const(16)  # outbox entries sent per delivery confirmation


def log(*args):
    print("[link]", *args)


def _quote(text):
    # percent-encode a query value (RFC 3986 unreserved characters stay)
    out = []
    for ch in str(text).encode():
        if 48 <= ch <= 57 or 65 <= ch <= 90 or 97 <= ch <= 122 or ch in b"-._~":
            out.append(chr(ch))
        else:
            out.append("%%%02X" % ch)
    return "".join(out)


def publisher_url(server_url, station, token):
    """The publisher's URL: the seed's query parameters, `token` only when set."""
    sep = "&" if "?" in server_url else "?"
    url = "%s%srole=publisher&estacionId=%d" % (server_url, sep, station)
    if token:
        url += "&token=" + _quote(token)
    return url


def _seconds(cfg, key, default, lo, hi):
    val = cfg.get(key)
    if val is None:
        val = default
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not lo <= val <= hi:
        raise ValueError("%s must be a number from %s to %s" % (key, lo, hi))
    return int(val * 1000)


class Link:
    """`await Link(cfg, handler, outbox).run()` keeps the charger connected, forever."""

    def __init__(self, cfg, handler, outbox):
        station = cfg.get("station")
        if isinstance(station, bool) or not isinstance(station, int) or station < 1:
            raise ValueError("station must be a positive integer")
        token = cfg.get("token") or ""
        if not isinstance(token, str):
            raise ValueError("token must be a string")
        self._url = publisher_url(cfg.get("server_url") or "", station, token)
        try:
            wsclient.parse_url(self._url)  # ValueError now rather than at every reconnect
        finally:
            forget("charger.wsopen")  # loaded for the check; each connect loads it again
        self._ca_cert = cfg.get("ca_cert")
        self._wifi = cfg.get("wifi")
        self._ping_ms = _seconds(cfg, "ping_interval_s", 20, 0.05, 3600)
        self._pong_ms = _seconds(cfg, "ping_timeout_s", 10, 0.05, 3600)
        self._min_ms = _seconds(cfg, "backoff_min_s", 1, 0.01, 3600)
        self._max_ms = _seconds(cfg, "backoff_max_s", 30, 0.01, 3600)
        if self._max_ms < self._min_ms:
            raise ValueError("backoff_max_s must not be below backoff_min_s")
        self._connect_ms = _seconds(cfg, "connect_timeout_s", 10, 0.1, 600)
        self._wifi_ms = _seconds(cfg, "wifi_timeout_s", 20, 0.1, 600)
        self._bufs = wsclient.Buffers(int(cfg.get("max_message") or 1024))
        self._handler = handler
        self._outbox = outbox
        self._wake = asyncio.Event()
        self._ws = None
        self._connected = False
        self._wlan = None
        self.last_close_code = None
        self.connects = 0          # successful connections so far

    @property
    def connected(self):
        return self._connected

    def notify(self):
        """Call after an outbox put: the link sends it as soon as it is connected."""
        self._wake.set()

    async def send_now(self, text):
        """Send a message that is meaningless later (`nfc_scan`); False when offline."""
        ws = self._ws
        if not self._connected or ws is None:
            return False
        try:
            await ws.send(text)
            return True
        except (wsclient.WebSocketError, OSError):
            return False

    # ---- the loop --------------------------------------------------------------------
    async def run(self):
        delay = self._min_ms
        while True:
            started = ticks_ms()
            was_up = False
            self.last_close_code = None
            try:
                was_up = await self._connect_and_serve()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the link must outlive any bug
                log("error:", repr(e))
                sys.print_exception(e)
            self._set_link(False)
            if was_up and ticks_diff(ticks_ms(), started) >= self._max_ms:
                delay = self._min_ms  # a stable connection resets the backoff
            if self.last_close_code in _CONFIG_CLOSE_CODES:
                delay = self._max_ms
            # jitter: 75 % .. 125 % of the delay, so chargers do not reconnect in step
            wait = delay * (768 + (random.getrandbits(10) >> 1)) // 1024
            log("reconnect in %d ms" % wait)
            await asyncio.sleep_ms(wait)
            delay = min(delay * 2, self._max_ms)

    async def _connect_and_serve(self):
        # one connection's life; True if it got as far as sending the status
        if not await self._wifi_up():
            return False
        try:
            ws = await wsclient.connect(
                self._url, ca_cert=self._ca_cert, timeout_ms=self._connect_ms,
                ping_interval_ms=self._ping_ms, ping_timeout_ms=self._pong_ms,
                buffers=self._bufs)
        except (OSError, wsclient.WebSocketError) as e:
            log("connect failed:", e)
            return False
        self._ws = ws
        rx = watch = None
        try:
            rx = asyncio.create_task(self._receive(ws))
            await self._send_status(ws)
            self.connects += 1
            self._set_link(True)
            if self._wifi is not None:
                watch = asyncio.create_task(self._watch_wifi(ws))
            await self._drain(ws)
            return True
        except (OSError, wsclient.WebSocketError) as e:
            log("connection lost:", e)
            return self._connected
        finally:
            self._ws = None
            for task in (rx, watch):
                if task is not None:
                    task.cancel()
                    try:
                        await task  # let it finish before the socket is closed
                    except BaseException:  # noqa: BLE001 - CancelledError, mostly
                        pass
            if ws.open:
                await ws.close(wsclient.CLOSE_GOING_AWAY, "")
            else:
                await ws.abort()
            self.last_close_code = ws.close_code
            log("closed", ws.close_code, ws.close_reason)

    async def _send_status(self, ws):
        try:
            texts = self._handler.status_messages()
        except Exception as e:  # noqa: BLE001
            log("status_messages failed:", repr(e))
            texts = ()
        for text in texts:
            await ws.send(text)

    async def _drain(self, ws):
        # Send the outbox oldest first; once all is sent, a ping's pong confirms delivery
        # and only then are the entries removed. Sleep until notify() or the connection ends.
        # A send usually returns without yielding, so at most _BATCH entries go before a
        # confirmation (which waits for its pong): a replay does not starve the other tasks.
        outbox = self._outbox
        outbox.rewind()  # what the last connection sent without a confirmation goes again
        sent = 0
        while ws.open:
            text = outbox.next_unsent() if sent < _BATCH else None
            if text is not None:
                await ws.send(text)
                sent += 1
            elif outbox.unconfirmed:
                if await ws.confirm():
                    outbox.confirm()
                sent = 0
            else:
                self._wake.clear()
                await self._wake.wait()
        raise wsclient.ConnectionClosed(ws.close_code or wsclient.CLOSE_ABNORMAL,
                                        ws.close_reason)

    async def _receive(self, ws):
        try:
            while True:
                text = await ws.recv()
                msg = messages.parse(text) if isinstance(text, str) else None
                if msg is None:
                    log("ignored a frame that is not a JSON message")
                    continue
                if msg["type"] == "sync_request":
                    await self._send_status(ws)
                try:
                    self._handler.on_message(msg)
                except Exception as e:  # noqa: BLE001 - a handler bug must not drop the link
                    log("on_message failed:", repr(e))
                    sys.print_exception(e)
        except (OSError, wsclient.WebSocketError) as e:
            log("receive ended:", e)
        finally:
            self._wake.set()  # the drain loop notices the closed connection

    # ---- WiFi --------------------------------------------------------------------------
    def _station(self):
        if self._wlan is None:
            import network
            self._wlan = network.WLAN(network.STA_IF)
        return self._wlan

    async def _wifi_up(self):
        if self._wifi is None:
            return True
        wlan = self._station()
        if wlan.isconnected():
            return True
        if not wlan.active():
            wlan.active(True)
        try:
            wlan.connect(self._wifi.get("ssid"), self._wifi.get("password") or "")
        except OSError as e:  # e.g. already connecting
            log("wifi connect:", e)
        log("wifi connecting to", self._wifi.get("ssid"))
        waited = 0
        while waited < self._wifi_ms:
            if wlan.isconnected():
                log("wifi up", wlan.ifconfig()[0])
                return True
            await asyncio.sleep_ms(_WIFI_POLL_MS)
            waited += _WIFI_POLL_MS
        log("wifi not connected, status", wlan.status())
        return False

    async def _watch_wifi(self, ws):
        wlan = self._station()
        while ws.open:
            await asyncio.sleep_ms(_WIFI_WATCH_MS)
            if not wlan.isconnected():
                log("wifi lost")
                await ws.abort("wifi lost")
                self._wake.set()
                return

    def _set_link(self, up):
        if up == self._connected:
            return
        self._connected = up
        try:
            self._handler.on_link(up)
        except Exception as e:  # noqa: BLE001
            log("on_link failed:", repr(e))
