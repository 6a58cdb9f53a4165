"""A small RFC 6455 WebSocket client on MicroPython asyncio streams.

Owns one client connection at a time: `await ws.connect(dest)` (the opening code -- the TCP
(ws://) or TLS (wss://, optional pinned CA file) connection and the handshake with a
random `Sec-WebSocket-Key` and a checked `Sec-WebSocket-Accept` -- is in charger/wsopen.py
and charger/wsaccept.py, loaded in turn for each connect and dropped after it), framing with a fresh client mask per frame,
reassembly of fragmented messages (control frames may arrive in between), pongs for the
server's pings, its own pings to notice a half-open link, the count of data frames written
on the connection (`count`: what the server's `ack` refers to), the server's compact `ack`
read in place (see `ack` in the class), the closing handshake, and the limits: a
message-size bound (close 1009) and timeouts on connect, handshake, reads and the close.

Why hand-written: micropython-lib's aiohttp WebSocket client does not reassemble fragmented
messages, does not check `Sec-WebSocket-Accept` and has no connect, handshake or read
timeouts; a charger must notice a dead link instead of hanging on it.

Errors: every failure is an OSError (one type for all: an exception class costs ~700 B of
RAM). `e.errno` is the close code (RFC 6455 section 7.4) once the connection is closed, the
HTTP status when the server did not upgrade (0: no HTTP answer, 101: a bad upgrade), 1015 when
TLS failed, 1006 for a connect/handshake timeout, or the socket's own errno; `e.args[1]` says
why.

Memory (issue 3): one WebSocket object serves every connection (connect it again after it
closed), so a reconnect allocates no new buffers, lock or views, and nothing of an old
connection stays. One bytearray holds the receive header, transmit header, transmit chunk,
control payload and message (the `_RXH`.. `_MSG` offsets); the few views used per frame are
sliced once into `views`. Receiving a frame allocates asyncio's
read of its header, a view of its payload and, at its end, the message; sending allocates
the UTF-8 bytes of a text, a 4-byte mask and one buffer view per chunk, and takes neither
the write lock nor a drain unless the socket did not take the whole frame. Few methods, few
attributes (the timeouts share one tuple, the blocked tasks one list), private consts;
functions called per frame keep within 11 frame slots (docs/architecture.md, "Firmware memory rules").

Read timeout: while a connection is open a keepalive task pings after `ping_ms` without a
received byte and fails the connection (1006) when still nothing arrives within `pong_ms`;
that bounds every read, mid-frame stalls included.

Runs on the ESP32 and on the MicroPython unix port (how it is tested), not under CPython.
`socket.getaddrinfo()` inside `asyncio.open_connection()` blocks (a MicroPython limitation),
so a slow DNS lookup is not covered by the connect timeout; use an IP address on the board.
"""

import asyncio
import os
from micropython import const
from time import ticks_add, ticks_diff, ticks_ms

# opcodes, RFC 6455 section 5.2
_CONT = const(0)
_TEXT = const(1)
_BINARY = const(2)
_CLOSE = const(8)
_PING = const(9)
_PONG = const(10)

# close codes, RFC 6455 section 7.4.1
_NORMAL = const(1000)
_PROTOCOL_ERROR = const(1002)
_NO_STATUS = const(1005)
_ABNORMAL = const(1006)
_INVALID_DATA = const(1007)
_TOO_BIG = const(1009)

# the one buffer: offsets of its parts
_RXH = const(0)  # received frame header: 2 bytes + up to 8 of extended length
_TXH = const(10)  # header being written: 2 + up to 8 + the 4-byte mask
_MASK = const(24)  # the mask of the frame being written, at a fixed place for the payload
_TX = const(28)  # the masked payload chunk being written (also the discard sink)
_TX_CHUNK = const(256)  # multiple of 4, so the mask index restarts at 0 in every chunk
_CTL = const(284)  # control frame payload (125 bytes at most)
_MSG = const(409)  # the message being reassembled (max_size bytes)

# indices in views (sliced once: no allocation per frame)
_ALL = const(0)
_HDR2 = const(1)
_EXT2 = const(2)
_EXT8 = const(3)
_HEAD = const(4)  # 4, 5, 6: the header being written with a 2, 4 or 10-byte start
_SINK = const(7)
_DONE = const(8)  # what _send_frame() returns when the frame is written: a finished
# iterator, so `await` returns None at once without allocating (MicroPython's await takes
# any iterator); kept here, not as a global: no name of its own

# indices in tasks: the tasks blocked on the socket, woken (cancelled) by drop()
_RX = const(0)
_TXT = const(1)
_KA = const(2)

_POLL_MS = const(20)


class WebSocket:
    """A client connection, reusable: `await ws.connect(dest)` again once it closed.

    `ms` = (ping_ms, pong_ms, close_ms): keepalive ping after ping_ms without a received byte
    (0: no keepalive, so no read timeout), pong_ms to get any byte back, close_ms for each
    step of the closing handshake. Use recv() from one task; send() from any. `open`,
    `close_code` (None until closed) and `close_reason` tell the state; `count` is the number
    of data frames (text or binary) written on this connection, from 1 after it opened, in
    the order they went on the wire.

    `ack` (set by the owner; None: off) = [acked, want, _, event]: recv() takes a text message
    that is exactly `{"type":"ack","n":N}` (the server's compact form) with N <= `count` in
    place, without returning it (`take_ack()`). No string, no coroutine per ack (each returned
    message costs a new recv() coroutine, ~300 B). Any other message, another form of an ack
    included, is returned: the owner hands its N to `take_ack()` too.
    """

    def __init__(self, max_size=4096, ping_ms=20000, pong_ms=10000, close_ms=3000):
        self.ms = (ping_ms, pong_ms, close_ms)
        self.buf = bytearray(_MSG + max_size)
        mv = memoryview(self.buf)
        self.views = (
            mv,
            mv[:2],
            mv[2:4],
            mv[2:10],
            mv[_TXH : _TXH + 6],
            mv[_TXH : _TXH + 8],
            mv[_TXH : _TXH + 14],
            mv[_TX : _TX + _TX_CHUNK],
            iter(()),
        )
        self.lock = asyncio.Lock()
        self.tasks = [None, None, None]
        self.stream = None
        self.open = False
        self.count = 0  # data frames written on this connection
        self.ack = None  # the owner's ack state (see the class docstring)
        self.last_rx = 0  # ticks_ms() of the last read that returned bytes
        self.close_code = _ABNORMAL
        self.close_reason = ""

    async def connect(self, dest, ca_cert=None, timeout_ms=10000):
        """Open the connection to dest = (host, port, resource, secure), what
        linkcfg.parse_url() makes of a ws:// or wss:// URL (parsed once, not per connect).
        Raises OSError (see the module doc). The opening code (charger/wsopen.py: the
        connection and the request, then charger/wsaccept.py: the answer's check) is loaded
        for the call, one module at a time, and dropped after it."""
        await self.drop()  # nothing if not open
        t = self.tasks
        if t[_KA] is not None:
            try:
                await t[_KA]  # the last connection's keepalive, cancelled, ends first
            except asyncio.CancelledError:
                pass
        t[_RX] = t[_TXT] = t[_KA] = None
        self.stream = None  # the last connection's: not kept through the handshake (peak)
        self.close_code = None
        self.close_reason = ""
        self.count = 0
        from charger import forget, wsopen

        # the timeout: a task that cancels this one when it ends first (in the keepalive's
        # slot until the connection is open: drop() cancels it)
        t[_KA] = asyncio.create_task(_late(asyncio.current_task(), timeout_ms))
        try:
            # two modules loaded in turn, each dropped before the next (issue 13: the
            # reconnect's heap peak holds one of them): the connection and the request,
            # then the answer's check
            key = await wsopen.open_ws(self, dest, ca_cert, timeout_ms)
            wsopen = forget("charger.wsopen")  # (None: no reference left here)
            from charger import wsaccept

            await wsaccept.check(self, key, timeout_ms)
        except BaseException:
            await self.drop()
            raise
        finally:
            forget("charger.wsopen")
            forget("charger.wsaccept")
        t[_KA].cancel()
        self.open = True
        self.last_rx = ticks_ms()
        if self.ms[0] > 0:
            t[_KA] = asyncio.create_task(self._keepalive())

    async def _keepalive(self):
        # own pings (RFC 6455 section 5.5.2) after ping_ms without a received byte: any byte
        # back within pong_ms proves the link is alive, else the connection fails (1006).
        # Wakes once per ping_ms while the server keeps sending (its pings, its acks).
        ping_ms, pong_ms = self.ms[0], self.ms[1]
        try:
            while self.open:
                idle = ticks_diff(ticks_ms(), self.last_rx)
                if idle < ping_ms:
                    await asyncio.sleep_ms(ping_ms - idle)
                    continue
                sent = ticks_ms()
                idle = self._send_frame(_PING, b"")
                if idle is not self.views[_DONE]:  # a drain (wait_for needs a coroutine)
                    await asyncio.wait_for_ms(idle, pong_ms)
                await asyncio.sleep_ms(pong_ms)
                if self.open and ticks_diff(self.last_rx, sent) < 0:
                    break
            if self.open:
                await self.drop(_ABNORMAL, "no pong within %d ms" % pong_ms)
        except (asyncio.TimeoutError, OSError):  # the ping could not be sent
            await self.drop()
        except asyncio.CancelledError:
            pass

    # ---- receiving ---------------------------------------------------------------------
    async def recv(self, drain=False):
        """The next message: str (text) or bytes (binary). Raises OSError(close code).

        drain=True discards messages until the peer's close frame (close() uses it).
        RFC 6455 section 5.2 framing, 5.4 fragments, 5.5 control frames in between.
        """
        if self.close_code is not None:
            raise OSError(self.close_code, self.close_reason)
        if not drain:
            self.tasks[_RX] = asyncio.current_task()
        b = self.buf
        v = self.views
        total = 0
        kind = -1  # opcode of the message being reassembled, -1: none
        try:
            while True:
                got = None
                while got is None:  # through asyncio: a flood of frames cannot starve others
                    got = await self.stream.readinto(v[_HDR2])
                if got < 2:
                    await self._fill(v[_HDR2], got)
                self.last_rx = ticks_ms()
                b0 = b[_RXH]
                n = b[_RXH + 1]
                if b0 & 0x70 or n & 0x80:  # no extensions; a server never masks (section 5.1)
                    await self._fail(_PROTOCOL_ERROR, 0)  # "bad frame header"
                n &= 0x7F
                if n == 126:
                    got = self._take(v[_EXT2])
                    if got < 2:
                        await self._fill(v[_EXT2], got)
                    n = b[2] << 8 | b[3]
                elif n == 127:
                    got = self._take(v[_EXT8])
                    if got < 8:
                        await self._fill(v[_EXT8], got)
                    if b[2] or b[3] or b[4] or b[5] or b[6] & 0x80:  # top bit set: 1002
                        await self._fail(_PROTOCOL_ERROR if b[2] & 0x80 else _TOO_BIG, 1)
                    n = b[6] << 24 | b[7] << 16 | b[8] << 8 | b[9]
                op = b0 & 0x0F
                if op >= _CLOSE:  # control frames: short and unfragmented
                    if not b0 & 0x80 or n > 125:
                        await self._fail(_PROTOCOL_ERROR, 2)  # "bad control frame"
                    view = v[_ALL][_CTL : _CTL + n]
                    if n:
                        got = self._take(view)
                        if got < n:
                            await self._fill(view, got)
                    if op == _PING:  # section 5.5.2 -> 5.5.3: answer with the same payload
                        if self.open:
                            await self._send_frame(_PONG, view)
                    elif op == _PONG:
                        pass  # any byte received proves the link alive (last_rx)
                    elif op != _CLOSE:
                        await self._fail(_PROTOCOL_ERROR, 3)  # "unknown opcode"
                    elif n == 0:  # sections 5.5.1, 7.1.5: the peer's close code and reason
                        await self._fail(_NO_STATUS, "")
                    else:
                        code = b[_CTL] << 8 | b[_CTL + 1]
                        if n < 2 or not (
                            1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999
                        ):  # section 7.4, IANA
                            await self._fail(_PROTOCOL_ERROR, 4)  # "bad close code"
                        try:
                            view = str(view[2:], "utf-8")  # the reason
                        except UnicodeError:
                            await self._fail(_INVALID_DATA, 5)  # "reason not UTF-8"
                        await self._fail(code, view)
                    continue
                if op == _CONT:
                    if kind < 0:  # a continuation without a message
                        await self._fail(_PROTOCOL_ERROR, 6)  # "bad fragmentation"
                elif op == _TEXT or op == _BINARY:
                    if kind >= 0:  # a message inside a fragmented one
                        await self._fail(_PROTOCOL_ERROR, 6)  # "bad fragmentation"
                    kind = op
                else:
                    await self._fail(_PROTOCOL_ERROR, 3)  # "unknown opcode"
                if total + n > len(b) - _MSG:  # section 10.4: limit the size of messages
                    await self._fail(_TOO_BIG, "message above %d bytes" % (len(b) - _MSG))
                if n:
                    view = v[_ALL][_MSG + total : _MSG + total + n]
                    got = self._take(view)
                    if got < n:
                        await self._fill(view, got)
                total += n
                if b0 & 0x80:
                    if kind == _TEXT and self.ack is not None and not drain:
                        if take_ack(self.ack, _ack_n(b, _MSG, _MSG + total), self.count):
                            total = 0
                            kind = -1
                            continue
                    if drain:
                        total = 0
                        kind = -1
                        continue
                    view = v[_ALL][_MSG : _MSG + total]
                    if kind == _BINARY:
                        return bytes(view)
                    try:
                        return str(view, "utf-8")
                    except UnicodeError:  # section 8.1
                        await self._fail(_INVALID_DATA, 7)  # "text not UTF-8"
        except asyncio.CancelledError:
            if self.close_code is None:  # cancelled by its owner, not by drop()
                raise
        except OSError:  # the socket failed, or a failure already dropped the connection
            await self.drop()
        finally:
            if not drain:
                self.tasks[_RX] = None
        raise OSError(self.close_code, self.close_reason)

    def _take(self, view):
        # As much of view as the socket already holds, read without the scheduler and
        # without a coroutine (no allocation): the count (0: nothing yet, or the end)
        n = self.stream.s.readinto(view)  # non-blocking socket
        if not n:
            return 0
        self.last_rx = ticks_ms()
        return n

    async def _fill(self, view, at):
        # the rest of view (from `at`) through asyncio; the end of the stream is a loss
        s = self.stream
        while at < len(view):
            n = await s.readinto(view[at:])
            if n is None:
                continue
            if not n:
                raise OSError(_ABNORMAL)
            self.last_rx = ticks_ms()
            at += n

    async def _fail(self, code, reason):
        # RFC 6455 section 7.1.7 (fail the connection) and 5.5.1 (answer a close with a
        # close); called by the reader only; raises the OSError that recv() reports. The
        # reader's own reasons are numbers into one string: a short string constant is an
        # interned name for good (the qstr pool's next chunk comes at once past 300 names:
        # docs/performance.md), a longer one an object at each call site.
        if isinstance(reason, int):
            reason = (
                "bad frame header,frame too big,bad control frame,unknown opcode,"
                "bad close code,reason not UTF-8,bad fragmentation,text not UTF-8"
            ).split(",")[reason]
        if self.open:
            self.open = False
            try:
                await asyncio.wait_for_ms(self._closing(code, reason, True), self.ms[2])
            except (asyncio.TimeoutError, OSError):
                pass
        await self.drop(code, reason)
        raise OSError(code, reason)

    async def _closing(self, code, reason, drain):
        # Send a close frame: the code (none for 1005: the peer sent none) and the reason.
        # drain: then discard what still arrives until the server closes TCP (section 7.1.1):
        # closing with unread data would reset the connection and destroy our close frame.
        await self._send_frame(
            _CLOSE,
            b"" if code == _NO_STATUS else bytes((code >> 8, code & 0xFF)) + reason.encode()[:123],
        )
        s = self.stream
        while drain and await s.readinto(self.views[_SINK]) != 0:
            pass

    # ---- sending -----------------------------------------------------------------------
    def send(self, data):
        """Send a text (str) or binary (bytes) message: `await ws.send(data)`. Raises
        OSError. (A plain function returning the sending coroutine: one allocation less
        per message.)"""
        if not self.open:
            raise OSError(self.close_code or _ABNORMAL, self.close_reason)
        if isinstance(data, str):
            return self._send_frame(_TEXT, data.encode())
        return self._send_frame(_BINARY, data)

    def _send_frame(self, kind, data):
        # `await` what this returns. The common case: nobody is draining and the socket
        # takes the whole frame: written here, no lock, no yield and no coroutine (~250 B
        # of garbage per frame): the caller awaits _DONE, which returns at once.
        # Otherwise the frame queues behind the lock and is drained there (asyncio's write
        # appends to a buffer that a running drain would lose); a failed write is dropped
        # and raised there too (op -1). Within 11 frame slots (no heap frame per call):
        # hence the bare except (matching OSError needs more slots) and no more locals.
        if self.lock.locked():
            return self.drain(kind, data)
        try:
            self._write_frame(kind, data)  # synchronous: only its OSError can come out
        except:  # noqa: E722
            kind = -1
        if kind < 0 or self.stream.out_buf:
            return self.drain(kind, None)
        return self.views[_DONE]

    async def drain(self, kind, data):
        # _send_frame()'s slow path (named as the stream's method: one interned name)
        lock = self.lock
        try:
            if kind < 0:
                raise OSError(_ABNORMAL)
            async with lock:
                if data is not None:
                    self._write_frame(kind, data)
                self.tasks[_TXT] = asyncio.current_task()
                await self.stream.drain()
                return
        except asyncio.CancelledError:
            if self.close_code is None:  # a half-written drain cannot be resumed
                await self.drop()
                raise
        except OSError:
            await self.drop()
        finally:
            self.tasks[_TXT] = None
        raise OSError(self.close_code, self.close_reason)

    def _write_frame(self, kind, data):
        # RFC 6455 section 5.2 framing, one unfragmented frame, handed to the stream without
        # a yield: frames of different tasks never interleave. This and the helpers below
        # keep within 11 frame slots: called per frame, they allocate no heap frame.
        if self.close_code is not None:
            raise OSError(_ABNORMAL)
        if kind < _CLOSE:  # a data frame: counted in the order frames go on the wire
            self.count += 1
        n = len(data)
        kind = _header(self.buf, kind, n)  # now the index of the header's view
        self.stream.write(self.views[_HEAD + kind])
        if n > _TX_CHUNK:
            _write_long(self.stream, self.buf, data, n)
        elif n:
            _mask_chunk(self.buf, data, n)
            self.stream.write(self.views[_SINK][:n])

    # ---- closing -----------------------------------------------------------------------
    async def close(self, code=_NORMAL, reason=""):
        """Closing handshake (RFC 6455 section 7.1.2): send a close, wait for the echo.

        Waits at most `close_ms` for each, then closes the socket anyway.
        """
        t = self.ms[2]
        if self.open:
            self.open = False
            try:
                await asyncio.wait_for_ms(self._closing(code, reason, False), t)
                if self.tasks[_RX] is None:  # nobody reads: read up to the echo here
                    await asyncio.wait_for_ms(self.recv(True), t)
            except asyncio.TimeoutError:
                pass
            except OSError:  # the echo came (recv raises it), or the socket failed
                pass
        due = ticks_add(ticks_ms(), t)
        while self.close_code is None and ticks_diff(due, ticks_ms()) > 0:
            await asyncio.sleep_ms(_POLL_MS)  # recv() in another task reads the echo
        await self.drop(code, reason)

    async def drop(self, code=_ABNORMAL, reason="connection lost"):
        """Close the socket now, without a closing handshake (e.g. WiFi is gone), and wake
        (cancel) the tasks blocked on it. Does nothing once closed."""
        if self.close_code is not None:
            return
        self.open = False
        self.close_code = code
        self.close_reason = reason
        me = asyncio.current_task()
        for task in self.tasks:
            if task is not None and task is not me:
                task.cancel()
        s = self.stream
        if s is not None:
            try:
                s.close()
                await s.wait_closed()
            except OSError:
                pass


async def _late(task, ms):
    # the opening's timeout (connect()): cancels the connecting task unless cancelled first
    await asyncio.sleep_ms(ms)
    task.cancel()


def _header(buf, kind, n):
    # The header of a masked frame of n bytes with a fresh mask (section 5.3 / 10.3:
    # unpredictable, new per frame), also kept at _MASK for the payload; the index of the
    # header's view after _HEAD (0, 1, 2: the mask at 2, 4 or 10)
    buf[_TXH] = 0x80 | kind
    if n < 126:
        buf[_TXH + 1] = 0x80 | n
        at = 2
    elif n < 65536:
        buf[_TXH + 1] = 0xFE
        buf[_TXH + 2] = n >> 8
        buf[_TXH + 3] = n & 0xFF
        at = 4
    else:
        buf[_TXH + 1] = 0xFF
        for at in range(8):
            buf[_TXH + 9 - at] = n >> (8 * at) & 0xFF
        at = 10
    m = os.urandom(4)
    buf[_MASK : _MASK + 4] = m  # slice assignments allocate nothing
    buf[_TXH + at : _TXH + at + 4] = m
    return at >> 2


def take_ack(a, n, count):
    # The server's ack N on the ack state a = [acked, want, _, event] of a connection that
    # wrote `count` frames: acked = max(acked, N), and `event` is set once N covers the batch
    # in flight (want > 0). False (nothing taken) when N is no frame count of it.
    if not 0 <= n <= count:
        return False
    if n > a[0]:
        a[0] = n
        if 0 < a[1] <= n:
            a[3].set()
    return True


def _ack_n(buf, at, end):
    # N of a message buf[at:end] that is exactly {"type":"ack","n":N} (N digits), else -1;
    # compares in place: allocates nothing (within 11 frame slots)
    if end - at < 20 or buf[end - 1] != 0x7D:  # }
        return -1
    p = b'{"type":"ack","n":'
    for k in range(18):  # (range in a for: no iterator object on MicroPython)
        if buf[at + k] != p[k]:
            return -1
    n = 0
    at += 18
    while at < end - 1:
        k = buf[at] - 48
        if not 0 <= k <= 9:
            return -1
        n = n * 10 + k
        at += 1
    return n


def _mask_chunk(buf, data, n):
    # data[0:k] masked into the transmit chunk
    for i in range(n):
        buf[_TX + i] = data[i] ^ buf[_MASK + (i & 3)]


def _write_long(stream, buf, data, n):
    # a payload above one chunk: masked and written a chunk at a time (_TX_CHUNK is a
    # multiple of 4, so the mask index restarts at 0 in every chunk)
    view = memoryview(data)
    done = 0
    while done < n:
        k = n - done if n - done < _TX_CHUNK else _TX_CHUNK
        _mask_chunk(buf, view[done : done + k], k)
        stream.write(memoryview(buf)[_TX : _TX + k])
        done += k
