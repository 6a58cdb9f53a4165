"""A small RFC 6455 WebSocket client on MicroPython asyncio streams.

Owns one client connection: `connect()` (the URL, the TCP (ws://) or TLS (wss://, optional
pinned CA file) connection and the opening handshake with a random `Sec-WebSocket-Key` and a
checked `Sec-WebSocket-Accept` are in charger/wsopen.py, loaded for each connect and dropped
after it), framing with a fresh client mask per frame, reassembly of fragmented
messages (control frames may arrive in between), pongs for the server's pings, its own pings
to notice a half-open link, the closing handshake, and the limits: a message-size bound
(close 1009) and timeouts on connect, handshake, reads and the close.

Why hand-written: micropython-lib's aiohttp WebSocket client does not reassemble fragmented
messages, does not check `Sec-WebSocket-Accept` and has no connect, handshake or read
timeouts; a charger must notice a dead link instead of hanging on it.

Memory: the header, control-frame, message and transmit buffers live in a `Buffers` object
that the caller can keep across reconnects. Receiving a frame allocates nothing but the final
message; sending allocates the UTF-8 bytes of a text, a 4-byte mask and one buffer view, and
takes neither the write lock nor a drain unless the socket did not take the whole frame.
Functions called per frame keep their locals few: MicroPython allocates a bytecode frame of
more than 11 slots on the heap at every call.

Read timeout: while a connection is open a keepalive task pings after `ping_interval_ms`
without a received byte and fails the connection (1006) when still nothing arrives within
`ping_timeout_ms`; that bounds every read, mid-frame stalls included.

Runs on the ESP32 and on the MicroPython unix port (how it is tested), not under CPython.
`socket.getaddrinfo()` inside `asyncio.open_connection()` blocks (a MicroPython limitation),
so a slow DNS lookup is not covered by the connect timeout; use an IP address on the board.
"""

import asyncio
import os
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

# opcodes, RFC 6455 section 5.2
OP_CONT = const(0)
OP_TEXT = const(1)
OP_BINARY = const(2)
OP_CLOSE = const(8)
OP_PING = const(9)
OP_PONG = const(10)

# close codes, RFC 6455 section 7.4.1
CLOSE_NORMAL = const(1000)
CLOSE_GOING_AWAY = const(1001)
CLOSE_PROTOCOL_ERROR = const(1002)
CLOSE_NO_STATUS = const(1005)
CLOSE_ABNORMAL = const(1006)
CLOSE_INVALID_DATA = const(1007)
CLOSE_TOO_BIG = const(1009)

_OPEN = const(1)
_CLOSING = const(2)
_CLOSED = const(3)

_TX_CHUNK = const(256)  # multiple of 4, so the mask index restarts at 0 in every chunk
_PONG_POLL_MS = const(20)


class WebSocketError(Exception):
    """Base of every error this module raises (besides OSError from the socket)."""


class HandshakeError(WebSocketError):
    """The server did not upgrade the connection; `status` is the HTTP status (0: none)."""

    def __init__(self, status, detail):
        super().__init__("handshake failed (%d): %s" % (status, detail))
        self.status = status
        self.detail = detail


class ConnectionClosed(WebSocketError):
    """The connection is closed; `code` is the close code (RFC 6455 section 7.4)."""

    def __init__(self, code, reason=""):
        super().__init__("connection closed (%d) %s" % (code, reason))
        self.code = code
        self.reason = reason


class Buffers:
    """The preallocated buffers of one connection; keep one and pass it to every connect."""

    def __init__(self, max_size=4096):
        if max_size < 126:
            raise ValueError("max_size must be at least 126 bytes")
        self.max_size = max_size
        self.hdr = bytearray(14)
        self.ctl = bytearray(125)
        self.msg = bytearray(max_size)
        self.tx = bytearray(_TX_CHUNK)  # the masked payload being written
        self.txh = bytearray(14)  # the header being written, and views of its 3 lengths
        txh = memoryview(self.txh)
        self.heads = (txh[:6], txh[:8], txh[:14])
        self.mask = bytearray(4)  # the mask of the frame being written
        self.ping = bytearray(2)  # payload of the confirm() ping: its sequence number
        self.hdr_mv = memoryview(self.hdr)
        self.one = self.hdr_mv[0:1]    # fixed views, sliced once: no allocation per frame
        self.hdr2 = self.hdr_mv[0:2]
        self.ext2 = self.hdr_mv[2:4]
        self.ext8 = self.hdr_mv[2:10]
        self.ctl_mv = memoryview(self.ctl)
        self.msg_mv = memoryview(self.msg)
        self.tx_mv = memoryview(self.tx)


async def connect(url, *, ca_cert=None, timeout_ms=10000, ping_interval_ms=20000,
                  ping_timeout_ms=10000, close_timeout_ms=3000, buffers=None):
    """Open a WebSocket; returns an open `WebSocket`.

    Raises ValueError (bad URL), OSError (TCP), HandshakeError, or WebSocketError when
    connect + handshake take longer than `timeout_ms` or TLS fails (e.g. the server's
    certificate is not signed by the pinned CA). `ping_interval_ms=0` turns the
    keepalive (and so the read timeout) off. The opening code (charger/wsopen.py) is
    loaded for the call and dropped after it: an open connection does not need it.
    """
    from charger import forget, wsopen
    ws = WebSocket(buffers or Buffers(), ping_interval_ms, ping_timeout_ms, close_timeout_ms)
    try:
        await wsopen.open_ws(ws, url, ca_cert, timeout_ms)
    finally:
        del wsopen
        forget("charger.wsopen")
    ws._start_keepalive()
    return ws


def __getattr__(name):
    # parse_url() and accept_for() live in the opening code, loaded when asked for
    if name == "parse_url" or name == "accept_for":
        from charger import wsopen
        return getattr(wsopen, name)
    raise AttributeError(name)


def _valid_close_code(code):
    # RFC 6455 section 7.4.1 / 7.4.2 and the IANA registry: codes a peer may send
    return (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999)


class WebSocket:
    """One client connection. Use `recv()` from one task; `send()` from any."""

    def __init__(self, buffers, ping_interval_ms, ping_timeout_ms, close_timeout_ms):
        self._b = buffers
        self._ping_interval = ping_interval_ms
        self._ping_timeout = ping_timeout_ms
        self._close_timeout = close_timeout_ms
        self._stream = None
        self._state = _OPEN
        self._wlock = asyncio.Lock()
        self._closed_evt = asyncio.Event()
        self._rx_task = None     # the task blocked in recv(), if any
        self._tx_task = None     # the task blocked in a drain, if any
        self._ka_task = None
        self._pong_wanted = False  # a confirm() ping awaits its pong
        self._ping_seq = 0
        self._rx_count = 0       # bumps on every read that returned bytes
        self._last_rx = ticks_ms()
        self._fin = 0
        self._op = 0
        self.close_code = None
        self.close_reason = ""

    @property
    def open(self):
        return self._state == _OPEN

    # ---- keepalive: own pings detect a half-open link ----------------------------------
    def _start_keepalive(self):
        if self._ping_interval > 0:
            self._ka_task = asyncio.create_task(self._keepalive())

    async def _keepalive(self):
        try:
            while self._state == _OPEN:
                idle = ticks_diff(ticks_ms(), self._last_rx)
                if idle < self._ping_interval:
                    await asyncio.sleep_ms(self._ping_interval - idle)
                    continue
                seen = self._rx_count
                try:
                    # RFC 6455 section 5.5.2: a ping; any bytes back prove the link is alive
                    await asyncio.wait_for_ms(self._send_frame(OP_PING, b""),
                                              self._ping_timeout)
                except asyncio.TimeoutError:
                    await self._drop(CLOSE_ABNORMAL, "ping could not be sent")
                    return
                except WebSocketError:
                    return
                await asyncio.sleep_ms(self._ping_timeout)
                if self._state == _OPEN and self._rx_count == seen:
                    await self._drop(CLOSE_ABNORMAL, "no pong within %d ms" % self._ping_timeout)
                    return
        except asyncio.CancelledError:
            pass
        except OSError:
            await self._drop(CLOSE_ABNORMAL, "connection lost")

    # ---- receiving ---------------------------------------------------------------------
    async def recv(self):
        """The next message: str (text) or bytes (binary). Raises ConnectionClosed."""
        if self._state == _CLOSED:
            raise ConnectionClosed(self.close_code, self.close_reason)
        self._rx_task = asyncio.current_task()
        try:
            return await self._recv_message()
        except asyncio.CancelledError:
            if self._state == _CLOSED:  # cancelled by _drop(): report why
                raise ConnectionClosed(self.close_code, self.close_reason)
            raise
        except OSError:
            raise await self._lost()
        finally:
            self._rx_task = None

    def _take(self, mv):
        # As much of mv as the socket already holds, read without the scheduler and without
        # a coroutine (no allocation): the count; 0 for nothing yet or the end of the
        # stream, which _fill() tells apart
        n = self._stream.s.readinto(mv)  # non-blocking socket
        if not n:
            return 0
        self._rx_count = (self._rx_count + 1) & 0x3FFFFFFF
        self._last_rx = ticks_ms()
        return n

    async def _fill(self, mv, got=0):
        # Read the rest of mv (from `got`): what the socket already holds without a trip
        # through the scheduler, then wait for the rest
        want = len(mv)
        stream = self._stream
        while got < want:
            part = mv[got:] if got else mv
            n = self._take(part)
            if not n:
                n = await stream.readinto(part)
                if n is None:
                    continue
                if n == 0:
                    raise await self._lost()
                self._rx_count = (self._rx_count + 1) & 0x3FFFFFFF
                self._last_rx = ticks_ms()
            got += n

    async def _read_header(self):
        # RFC 6455 section 5.2: base framing; sets _fin/_op, returns the payload length
        b = self._b
        h = b.hdr
        got = None
        while got is None:  # through asyncio, so a flood of frames cannot starve the others
            got = await self._stream.readinto(b.hdr2)
        if got == 0:
            raise await self._lost()
        self._rx_count = (self._rx_count + 1) & 0x3FFFFFFF
        self._last_rx = ticks_ms()
        if got < 2:
            await self._fill(b.hdr2, got)
        b0 = h[0]
        b1 = h[1]
        if b0 & 0x70:
            await self._fail(CLOSE_PROTOCOL_ERROR, "reserved bits set")  # no extensions
        if b1 & 0x80:
            await self._fail(CLOSE_PROTOCOL_ERROR, "masked server frame")  # section 5.1
        n = b1 & 0x7F
        if n == 126:
            got = self._take(b.ext2)
            if got < 2:
                await self._fill(b.ext2, got)
            n = (h[2] << 8) | h[3]
        elif n == 127:
            got = self._take(b.ext8)
            if got < 8:
                await self._fill(b.ext8, got)
            if h[2] & 0x80:
                await self._fail(CLOSE_PROTOCOL_ERROR, "64-bit length with the top bit set")
            if h[2] or h[3] or h[4] or h[5] or h[6] & 0x80:
                await self._fail(CLOSE_TOO_BIG, "frame too big")
            n = (h[6] << 24) | (h[7] << 16) | (h[8] << 8) | h[9]
        self._fin = b0 & 0x80
        self._op = b0 & 0x0F
        return n

    async def _recv_message(self):
        b = self._b
        total = 0
        msg_op = -1  # opcode of the message being reassembled, -1: none
        while True:
            n = await self._read_header()
            op = self._op
            if op >= OP_CLOSE:
                # section 5.5: control frames are short, unfragmented, may come in between
                if not self._fin or n > 125:
                    await self._fail(CLOSE_PROTOCOL_ERROR, "bad control frame")
                if n:
                    view = b.ctl_mv[:n]
                    got = self._take(view)
                    if got < n:
                        await self._fill(view, got)
                if op == OP_PING:  # section 5.5.2 -> 5.5.3: answer with the same payload
                    if self._state == _OPEN:
                        await self._send_frame(OP_PONG, b.ctl_mv[:n])
                elif op == OP_CLOSE:
                    await self._on_close_frame(n)
                elif op == OP_PONG:
                    p = b.ping
                    if n == 2 and b.ctl[0] == p[0] and b.ctl[1] == p[1]:
                        self._pong_wanted = False
                else:
                    await self._fail(CLOSE_PROTOCOL_ERROR, "reserved control opcode")
                continue
            if op == OP_CONT:  # section 5.4: fragments of one message, in order
                if msg_op < 0:
                    await self._fail(CLOSE_PROTOCOL_ERROR, "continuation without a message")
            elif op == OP_TEXT or op == OP_BINARY:
                if msg_op >= 0:
                    await self._fail(CLOSE_PROTOCOL_ERROR, "message inside a fragmented one")
                msg_op = op
            else:
                await self._fail(CLOSE_PROTOCOL_ERROR, "reserved opcode")
            if total + n > b.max_size:  # section 10.4: limit the size of messages
                await self._fail(CLOSE_TOO_BIG, "message above %d bytes" % b.max_size)
            if n:
                view = b.msg_mv[total:total + n]
                got = self._take(view)
                if got < n:
                    await self._fill(view, got)
            total += n
            if self._fin:
                data = b.msg_mv[:total]
                if msg_op == OP_BINARY:
                    return bytes(data)
                try:
                    return str(data, "utf-8")
                except UnicodeError:  # section 8.1
                    await self._fail(CLOSE_INVALID_DATA, "text is not UTF-8")

    async def _on_close_frame(self, n):
        # RFC 6455 section 5.5.1 and 7.1.5: the close code and reason of the peer
        c = self._b.ctl
        if n == 0:
            code, reason = CLOSE_NO_STATUS, ""
        elif n == 1:
            await self._fail(CLOSE_PROTOCOL_ERROR, "close frame of 1 byte")
        else:
            code = (c[0] << 8) | c[1]
            if not _valid_close_code(code):
                await self._fail(CLOSE_PROTOCOL_ERROR, "invalid close code %d" % code)
            try:
                reason = str(self._b.ctl_mv[2:n], "utf-8")
            except UnicodeError:
                await self._fail(CLOSE_INVALID_DATA, "close reason is not UTF-8")
        if self._state == _OPEN:
            # section 5.5.1: answer a close with a close (echoing the code)
            self._state = _CLOSING
            try:
                await self._send_close(code if code != CLOSE_NO_STATUS else None, "")
            except (OSError, WebSocketError):
                pass
            # section 7.1.1: the server closes TCP first; wait for that, not forever
            await self._await_eof()
        await self._drop(code, reason)
        raise ConnectionClosed(code, reason)

    async def _await_eof(self):
        try:
            await asyncio.wait_for_ms(self._discard_until_eof(), self._close_timeout)
        except (asyncio.TimeoutError, OSError):
            pass

    async def _discard_until_eof(self):
        sink = self._b.tx_mv
        while True:
            n = await self._stream.readinto(sink)
            if n == 0:
                return

    async def _fail(self, code, reason):
        # RFC 6455 section 7.1.7: Fail the WebSocket Connection (called by the reader only)
        if self._state == _OPEN:
            self._state = _CLOSING
            try:
                await asyncio.wait_for_ms(self._send_close(code, reason), self._close_timeout)
                # discard what still arrives until the peer closes: closing with unread
                # data would reset the connection and could destroy our close frame
                await self._await_eof()
            except (asyncio.TimeoutError, OSError, WebSocketError):
                pass
        await self._drop(code, reason)
        raise ConnectionClosed(code, reason)

    # ---- sending -----------------------------------------------------------------------
    def send(self, data):
        """Send a text (str) or binary (bytes) message: `await ws.send(data)`. Raises
        ConnectionClosed. (A plain function returning the sending coroutine: one
        allocation less per message.)"""
        if self._state != _OPEN:
            raise ConnectionClosed(self.close_code or CLOSE_ABNORMAL, self.close_reason)
        if isinstance(data, str):
            return self._send_frame(OP_TEXT, data.encode())
        return self._send_frame(OP_BINARY, data)

    def ping(self, payload=b""):
        """Send a ping: `await ws.ping()` (the keepalive does this by itself)."""
        return self._send_frame(OP_PING, payload)

    async def confirm(self):
        """Ping and wait for its pong: True once the server has read every frame sent
        before (RFC 6455 section 5.5.3: the pong answers a ping read after them). False
        when the connection closes or no pong comes within `ping_timeout_ms` (the
        connection then fails with 1006). Needs recv() running in another task.
        Waits by polling every 20 ms: `wait_for` would create a task per confirmation."""
        self._ping_seq = seq = (self._ping_seq + 1) & 0xFFFF
        p = self._b.ping
        p[0] = seq >> 8
        p[1] = seq & 0xFF
        self._pong_wanted = True
        await self._send_frame(OP_PING, p)
        due = ticks_add(ticks_ms(), self._ping_timeout)
        while self._pong_wanted and self._state == _OPEN:
            if ticks_diff(due, ticks_ms()) <= 0:
                await self._drop(CLOSE_ABNORMAL, "no pong within %d ms" % self._ping_timeout)
                return False
            await asyncio.sleep_ms(_PONG_POLL_MS)
        return self._state == _OPEN and not self._pong_wanted

    async def _send_close(self, code, reason):
        if code is None:
            await self._send_frame(OP_CLOSE, b"")
            return
        r = reason.encode()[:123]
        await self._send_frame(OP_CLOSE, bytes((code >> 8, code & 0xFF)) + r)

    async def _send_frame(self, op, payload):
        # The common case: nobody is draining and the socket takes the whole frame: no
        # lock, no yield. Otherwise the frame queues behind the lock and is drained there
        # (asyncio's write appends to a buffer that a running drain would lose).
        lock = self._wlock
        try:
            if not lock.locked():
                self._write_frame(op, payload)
                if not self._stream.out_buf:
                    return
                payload = None  # written; what is left is the drain
            async with lock:
                if payload is not None:
                    self._write_frame(op, payload)
                self._tx_task = asyncio.current_task()
                await self._stream.drain()
        except asyncio.CancelledError:
            if self._state == _CLOSED:  # cancelled by _drop(): report why
                raise ConnectionClosed(self.close_code, self.close_reason)
            # a half-written drain cannot be resumed: the connection is broken
            await self._drop(CLOSE_ABNORMAL, "send interrupted")
            raise
        except OSError:
            raise await self._lost()
        finally:
            self._tx_task = None

    def _write_frame(self, op, payload):
        # RFC 6455 section 5.2 framing, one unfragmented frame, masked (section 5.3), handed
        # to the stream without a yield: frames of different tasks never interleave
        stream = self._stream
        if stream is None or self._state == _CLOSED:
            raise ConnectionClosed(self.close_code or CLOSE_ABNORMAL, self.close_reason)
        b = self._b
        n = len(payload)
        _header(stream, b, op, n)
        if n > _TX_CHUNK:
            _write_long(stream, b, payload, n)
        elif n:
            _mask_chunk(b.tx, b.mask, payload, n)
            stream.write(b.tx_mv[:n])

    # ---- closing -----------------------------------------------------------------------
    async def close(self, code=CLOSE_NORMAL, reason=""):
        """Closing handshake (RFC 6455 section 7.1.2): send a close, wait for the echo.

        Waits at most `close_timeout_ms` for the echo, then closes the socket anyway.
        """
        if self._state == _OPEN:
            self._state = _CLOSING
            try:
                await asyncio.wait_for_ms(self._send_close(code, reason), self._close_timeout)
            except (asyncio.TimeoutError, OSError, WebSocketError):
                await self._drop(CLOSE_ABNORMAL, "close could not be sent")
                return
            try:
                if self._rx_task is not None:
                    # recv() in another task reads the echo and sets the event
                    await asyncio.wait_for_ms(self._closed_evt.wait(), self._close_timeout)
                else:
                    await asyncio.wait_for_ms(self._drain_until_close(), self._close_timeout)
            except (asyncio.TimeoutError, OSError, WebSocketError):
                pass
            await self._drop(code, reason)
        elif self._state == _CLOSING:
            try:
                await asyncio.wait_for_ms(self._closed_evt.wait(), self._close_timeout)
            except asyncio.TimeoutError:
                pass
            await self._drop(code, reason)

    async def _drain_until_close(self):
        while True:
            await self._recv_message()  # ends with ConnectionClosed on the echo

    async def abort(self, reason="aborted"):
        """Drop the connection now, without a closing handshake (e.g. WiFi is gone)."""
        await self._drop(CLOSE_ABNORMAL, reason)

    async def _lost(self):
        # the socket failed or hit EOF: close it; the error to raise
        await self._drop(CLOSE_ABNORMAL, "connection lost")
        return ConnectionClosed(self.close_code, self.close_reason)

    async def _drop(self, code, reason):
        # close the socket; wake (cancel) the tasks blocked on it; idempotent
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        me = asyncio.current_task()
        for task in (self._rx_task, self._tx_task, self._ka_task):
            if task is not None and task is not me:
                task.cancel()
        self._closed_evt.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
                await stream.wait_closed()
            except OSError:
                pass


def _header(stream, b, op, n):
    # writes the header of a masked frame of n bytes, with a fresh mask (section 5.3 /
    # 10.3: unpredictable, new per frame) that b.mask keeps for the payload
    h = b.txh
    h[0] = 0x80 | op
    if n < 126:
        h[1] = 0x80 | n
        _put_mask(b, 2)
        stream.write(b.heads[0])
    elif n < 65536:
        h[1] = 0x80 | 126
        h[2] = n >> 8
        h[3] = n & 0xFF
        _put_mask(b, 4)
        stream.write(b.heads[1])
    else:
        h[1] = 0x80 | 127
        _put_length64(h, n)
        _put_mask(b, 10)
        stream.write(b.heads[2])


def _put_length64(h, n):
    for i in range(2, 10):
        h[i] = (n >> (8 * (9 - i))) & 0xFF


def _put_mask(b, at):
    m = os.urandom(4)
    for i in range(4):
        b.mask[i] = b.txh[at + i] = m[i]


def _mask_chunk(tx, mask, payload, k):
    # payload[0:k] masked into tx[0:k] (a few locals: this frame stays off the heap)
    for i in range(k):
        tx[i] = payload[i] ^ mask[i & 3]


def _write_long(stream, b, payload, n):
    # a payload above one chunk: masked and written a chunk at a time (_TX_CHUNK is a
    # multiple of 4, so the mask index restarts at 0 in every chunk)
    view = memoryview(payload)
    done = 0
    while done < n:
        k = n - done
        if k > _TX_CHUNK:
            k = _TX_CHUNK
        _mask_chunk(b.tx, b.mask, view[done:done + k], k)
        stream.write(b.tx_mv[:k])
        done += k
