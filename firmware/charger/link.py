"""The link to the server: WiFi, the publisher WebSocket, reconnects, status and the outbox.

Owns the connection's life: WiFi up (`network.WLAN(STA_IF)`), connect to
`server_url?role=publisher&estacionId=N&token=T`, then send the handler's
`status_messages()` (the charger's physical truth) FIRST, report the link up, replay the
outbox in order and keep draining it as the app puts entries (`notify()` wakes the link),
hand every received message to `handler.on_message(dict)` and answer `sync_request` with
the status messages again. Any failure (server gone, close code, keepalive timeout, WiFi
lost) reports the link down and reconnects forever with exponential backoff and jitter.
A dead server is noticed within `ping_interval_s` + `ping_timeout_s` (10 + 5 s: the 15 s in
which the server shows a silent charger `desconectado`) of the last byte received (its
pings and acks count): the WebSocket pings only after that long without a byte.

An outbox entry leaves the outbox only when the server's `{"type":"ack","n":K}` covers it:
K is how many data frames of this connection the server has read AND committed to its
database. The WebSocket counts every data frame it writes (status, nfc_scan, metrics, stop,
emergency, the `sync_request` answer: `ws.count`, from 1 after connect), so the numbering is
the server's. Entries go in batches of up to 16; the next batch goes only when an ack covers
the whole batch in flight (K >= the frame number of its last entry), and then the whole
batch leaves the outbox: an ack that covers part of a batch releases nothing yet. A pong
confirms nothing (it only proves the link alive): what a server read but did not commit
before it died is sent again. When the connection ends, the unacknowledged entries are sent
again, in order, after the next connect's `status` (the server ignores a reading it already
has, and a repeated `stop` is harmless). An `ack` is the link's, never the handler's (the
WebSocket reads the server's compact form in place; `_receive` any other form); one whose
`n` is not a whole number or above the frames sent is logged and ignored.
A live link whose server does not ack (its disk failing) loses nothing either: entries wait
in the outbox under its bound (oldest reading dropped first), the keepalive still detects a
dead link, and when the batch in flight is not acked within `ack_timeout_s` the link closes
the connection (1001) and reconnects: the server never acks a connection again once one of
its frames could not be committed, and a new connection counts from 1 and replays. A server
that sends no `ack` at all (the seed's) is not supported: the charger would deliver one batch
per `ack_timeout_s` connection, again and again.

Several servers (`server_urls`, a list, instead of `server_url`; failover without a
balancer): the link connects to the first; when a connect fails (refused, timeout, handshake)
it tries the next one, round the list; the backoff grows once per round, not per URL. A
connection that was up and ended is retried on the same server first (a blip); if that
server is gone, its connect fails and the next one is tried.

Config keys (the parsed config dict): `server_url` or `server_urls`, `station`, `token`, `ca_cert`,
`wifi` ({ssid, password} or None: the network is managed elsewhere and not watched),
`ping_interval_s` (10), `backoff_max_s` (30); optional with defaults: `ping_timeout_s` (5),
`backoff_min_s` (1), `connect_timeout_s` (10), `wifi_timeout_s` (20), `ack_timeout_s` (30),
`max_message` (1024:
the server's messages to a charger are a few hundred bytes at most). charger/linkcfg.py
reads and checks them once, when the Link is built, and is dropped after.

Memory (issue 3): one wsclient.WebSocket serves every connection; the connection's life is
one coroutine (`run`) with two helper tasks per connection (receive; the watch: WiFi and the
ack's age) that end with it; the numbers sit in one tuple (`ms`), the connect arguments in
another (`dial`); log lines are made of short words (interned once) rather than long string
constants.
"""

import asyncio
import random
import sys
from micropython import const
from time import ticks_diff, ticks_ms

from charger import forget, messages, wsclient

_WIFI_POLL_MS = const(250)
_WIFI_WATCH_MS = const(1000)
_BATCH = const(16)  # outbox entries in flight: the next batch waits for their ack
# indices in ms
_MIN = const(0)
_MAX = const(1)
_WIFI = const(2)
_ACK = const(3)


class Link:
    """`await Link(cfg, handler, outbox).run()` keeps the charger connected, forever.

    `connected` is True while the server has the charger's status and the link is up.
    """

    def __init__(self, cfg, handler, outbox):
        from charger import linkcfg

        try:
            self.dial, self.ms, ws = linkcfg.settings(cfg)  # ValueError: a bad key
        finally:
            del linkcfg
            forget("charger.linkcfg")  # start-up code: its RAM goes back to the heap
        self.ws = wsclient.WebSocket(*ws)
        self.wifi = cfg.get("wifi")
        self.wlan = None
        self.handler = handler
        self.outbox = outbox
        self.wake = asyncio.Event()
        self.connected = False
        # this connection's acks: [frames the server acked, frame number the ack must reach
        # to release the batch in flight (0: none in flight, -1: its ack is overdue),
        # ticks_ms() when that batch went out, the Event an ack covering it sets]. The
        # WebSocket reads the server's compact ack into it (wsclient: no string, no
        # coroutine per ack); _receive() handles any other form.
        self.ack = [0, 0, 0, self.wake]
        self.ws.ack = self.ack

    def notify(self):
        """Call after an outbox put: the link sends it as soon as it is connected."""
        self.wake.set()

    async def send_now(self, text):
        """Send a message that is meaningless later (`nfc_scan`); False when offline."""
        if not self.connected:
            return False
        try:
            await self.ws.send(text)
            return True
        except OSError:
            return False

    async def run(self):
        """Connect, serve, reconnect; forever."""
        ws = self.ws
        outbox = self.outbox
        delay = self.ms[_MIN]
        dests, ca, tmo = self.dial
        i = 0  # the server URL tried now (server_urls: the next one after a failed connect)
        while True:
            started = ticks_ms()
            rx = watch = None
            try:
                if self.wifi is not None:
                    await self._wifi_up()  # OSError when it does not come up
                await ws.connect(dests[i], ca, tmo)
                if i:  # the server that answered goes first: tried first again, and the one
                    dests.insert(0, dests.pop(i))  # an update downloads from (charger/otaget.py)
                    i = 0
                ack = self.ack
                ack[0] = ack[1] = 0  # a new connection counts its frames from 1
                outbox.rewind()  # what the last connection did not get acked goes again
                rx = asyncio.create_task(self._receive())
                for text in self._hook(self.handler.status_messages, None):
                    await ws.send(text)  # the physical truth first
                self.connected = True
                self._hook(self.handler.on_link, True)
                watch = asyncio.create_task(self._watch())
                # Send the outbox oldest first, a batch of up to _BATCH entries; then
                # ack[1] = the frame number of its last entry (ws.count once it is written:
                # a frame another task wrote after it can only make it later, never
                # early), and nothing more goes until an ack covers it; then the batch
                # leaves the outbox. Sleep until notify(), the covering ack (only that one
                # sets `wake`) or the connection's end: one wake-up per queued
                # reading and one per covering ack (each wake-up allocates in asyncio). A
                # send usually returns without yielding, so a replay of many entries does
                # not starve the other tasks.
                sent = 0
                while ws.open:
                    if ack[1] < 0:  # _watch(): no ack within ack_timeout_s
                        raise OSError(1001, "no ack")  # closed with 1001, then reconnect
                    if ack[1] and ack[0] >= ack[1]:  # the server committed the batch
                        outbox.confirm()
                        ack[1] = sent = 0
                    # (next_unsent() only when something is unsent: a call allocates
                    # its frame, ~190 B, even when it returns None)
                    text = (
                        outbox.next_unsent()
                        if not ack[1] and sent < _BATCH and len(outbox) > outbox.unconfirmed
                        else None
                    )
                    if text is not None:
                        await ws.send(text)
                        sent += 1
                    elif sent and not ack[1]:
                        ack[1] = ws.count  # the batch is out: wait for its ack
                        ack[2] = ticks_ms()
                    else:  # nothing to send, or waiting for the ack
                        self.wake.clear()
                        await self.wake.wait()
            except OSError as e:
                print("[link]", "lost", e)
            except Exception as e:  # noqa: BLE001 - the link must outlive any bug
                print("[link]", "error", repr(e))
                sys.print_exception(e)
            finally:  # also when run() itself is cancelled
                for task in (rx, watch):
                    if task is not None:
                        task.cancel()
                        try:
                            await task  # let it finish before the socket is closed
                        except BaseException:  # noqa: BLE001 - CancelledError, mostly
                            pass
                if rx is not None:
                    await (ws.close(1001, "") if ws.open else ws.drop())
                    print("[link]", "closed", ws.close_code, ws.close_reason)
            if self.connected:
                self.connected = False
                self._hook(self.handler.on_link, False)
                if ticks_diff(ticks_ms(), started) >= self.ms[_MAX]:
                    delay = self.ms[_MIN]  # a stable connection resets the backoff
            if rx is not None and ws.close_code in (4001, 4003, 4004, 4005, 4006):
                delay = self.ms[_MAX]  # a configuration problem: retrying soon cannot help
            if rx is None:  # no connection: the next server of the list
                i = (i + 1) % len(dests)
            # jitter: 75 % .. 125 % of the delay, so chargers do not reconnect in step
            wait = delay * (768 + (random.getrandbits(10) >> 1)) // 1024
            print("[link]", "reconnect", "in", wait, "ms", "to", dests[i][0], dests[i][1])
            await asyncio.sleep_ms(wait)
            if not i:  # the backoff grows once per round of the list
                delay = min(delay * 2, self.ms[_MAX])

    def _hook(self, handler, arg):
        # a handler call that must not stop the link
        try:
            return handler(arg) if arg is not None else handler()
        except Exception as e:  # noqa: BLE001
            print("[link]", "handler", repr(e))
            sys.print_exception(e)
            return ()

    async def _receive(self):
        ws = self.ws
        ack = self.ack
        try:
            while True:
                text = await ws.recv()  # (the server's compact acks never come out here)
                msg = messages.parse(text) if isinstance(text, str) else None
                if msg is None:
                    print("[link]", "ignored", repr(text[:32]))  # not a JSON message
                    continue
                if msg["type"] != "ack":
                    if msg["type"] == "sync_request":
                        for text in self._hook(self.handler.status_messages, None):
                            await ws.send(text)
                    self._hook(self.handler.on_message, msg)
                    continue
                # an ack in another form: the link's own, not the handler's; taken as
                # the compact one is (it cannot confirm what was never sent)
                n = msg.get("n")
                if (
                    not isinstance(n, int)
                    or isinstance(n, bool)
                    or not wsclient.take_ack(ack, n, ws.count)
                ):
                    print("[link]", "ignored", "ack", n)
        except OSError as e:
            print("[link]", "recv", e)  # the connection ended
        finally:
            self.wake.set()  # the drain loop notices the closed connection

    async def _wifi_up(self):
        # the station joins the access point within the WiFi timeout, else OSError
        if self.wlan is None:
            import network

            self.wlan = network.WLAN(network.STA_IF)
        wlan = self.wlan
        if wlan.isconnected():
            return
        wlan.active(True)
        try:
            wlan.connect(self.wifi.get("ssid"), self.wifi.get("password") or "")
        except OSError as e:  # e.g. already connecting
            print("[link]", "wifi", e)
        waited = 0
        while not wlan.isconnected():
            if waited >= self.ms[_WIFI]:
                raise OSError(wlan.status(), "wifi not connected")
            await asyncio.sleep_ms(_WIFI_POLL_MS)
            waited += _WIFI_POLL_MS
        print("[link]", "wifi", "up", wlan.ifconfig()[0])

    async def _watch(self):
        # every second while connected: WiFi lost (when the link manages it) drops the
        # connection; a batch in flight unacked for ack_timeout_s makes run() reconnect
        ws = self.ws
        ack = self.ack
        while ws.open:
            await asyncio.sleep_ms(_WIFI_WATCH_MS)
            if self.wifi is not None and not self.wlan.isconnected():
                await ws.drop(1006, "wifi disconnected")
                self.wake.set()
                return
            if ack[1] > 0 and ticks_diff(ticks_ms(), ack[2]) >= self.ms[_ACK]:
                ack[1] = -1
                self.wake.set()
                return
