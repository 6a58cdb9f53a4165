"""A scriptable stand-in for the server, to bench-test the firmware (or a real board).

    python -m tools.fakeserver [--host 0.0.0.0] [--port 3000] [--station N] [--token T]
        [--session-id 1001] [--user-name "Juan Pérez"] [--reject CODE] [--script FILE]
        [--no-ack] [--ack-delay 0.2]

Accepts the publisher at `/ws?role=publisher&estacionId=N[&token=T]` (the seed's URL and
close codes: 4001 no/unknown role, 4004 no `estacionId`, 4005 another station than
`--station`, 4003 wrong `--token`; any other path answers 404), greets it with the seed's
`connected`, prints every frame it receives (`<-`) and sends (`->`), and answers `nfc_scan`
with `start` (session ids counting up from `--session-id`) or, with `--reject CODE`, with
`{"type":"error","message":...,"code":CODE}`. It acknowledges delivery as the real server
does (docs/protocol.md, "Acknowledged delivery"), with nothing to commit: it counts the data
frames (text or binary, valid or not) read on the publisher connection from 1 and sends
`{"type":"ack","n":K}` at most once per `--ack-delay` seconds (0.2: about 5 a second), only
when K grew. `--no-ack` (or the `acks off` command) withholds acks, as a server whose disk
is failing would: the charger keeps everything in its outbox and sends it again after a
reconnect. Commands, typed on stdin or listed in a `--script` file (run once the publisher
is connected):

    stop [SESSION]        send stop (default: the session the last start opened)
    sync                  send {"type":"sync_request","from":"server"}
    error CODE [TEXT]     send an error message
    send JSON             send any JSON text as is
    close CODE [REASON]   close the publisher connection with that code
    ack [N]               send {"type":"ack","n":N} now (default: every frame read so far)
    acks on|off           send acks by themselves (the default) or withhold them
    wait TYPE [SECONDS]   (scripts) wait for a frame of that type, default 30 s
    quit                  stop the server

Not the real server: no database, no billing. `FakeServer` is usable from tests as well.
"""

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

COMMANDS = ("stop", "sync", "error", "send", "close", "ack", "acks", "wait", "quit")


class CommandError(ValueError):
    """A command line that cannot be carried out; the message says why."""


class FakeServer:
    """The fake server's state and behaviour; `start()` binds, `run_command()` acts."""

    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        station=None,
        token=None,
        session_id=1001,
        user_name="Juan Pérez",
        reject=None,
        out=None,
        ack=True,
        ack_delay=0.2,
    ):
        self.host = host
        self.port = port
        self.station = station
        self.token = token
        self.next_session = session_id
        self.user_name = user_name
        self.reject = reject
        self.out = out or sys.stdout
        self.session = None  # the session id the last start opened
        self.publisher = None
        self.received = []  # every frame received, parsed (or the raw text)
        self.acking = ack  # send acks by themselves
        self.ack_delay = ack_delay  # at most one ack per this many seconds
        self.count = 0  # data frames read on the publisher connection
        self.acked = 0  # the highest n acked on it
        self._acker = None  # the pending ack task
        self._cursor = 0  # wait_for() looks at frames from here on
        self._changed = asyncio.Condition()
        self._server = None
        self.done = asyncio.Event()

    # ---- lifecycle ---------------------------------------------------------------------
    async def start(self):
        self._server = await serve(
            self._handler, self.host, self.port, process_request=self._check_path
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.log("listening on ws://%s:%d/ws" % (self.host, self.port))
        return self

    async def stop(self):
        self._server.close()
        await self._server.wait_closed()

    def log(self, *parts):
        print(time.strftime("%H:%M:%S"), *parts, file=self.out, flush=True)

    # ---- the connection ----------------------------------------------------------------
    def _check_path(self, connection, request):
        if urlsplit(request.path).path != "/ws":
            return connection.respond(404, "Not Found\n")
        return None

    def _refusal(self, query):
        role = query.get("role", [None])[0]
        if role not in ("publisher", "client"):
            return 4001, "role missing or unknown"
        if role == "client":
            return 4001, "the fake server takes the publisher only"
        station = query.get("estacionId", [None])[0]
        if not station:
            return 4004, "falta estacionId"
        if self.station is not None and station != str(self.station):
            return 4005, "Estacion no encontrada"
        if self.token is not None and query.get("token", [None])[0] != self.token:
            return 4003, "token invalido"
        return None

    async def _handler(self, ws):
        query = parse_qs(urlsplit(ws.request.path).query)
        refusal = self._refusal(query)
        if refusal:
            self.log("refused", ws.request.path, "with", refusal[0], refusal[1])
            await ws.close(*refusal)
            return
        if self.publisher is not None:
            self.log("a newer publisher replaces the old connection (4008)")
            await self.publisher.close(4008, "replaced by a newer connection")
        async with self._changed:
            self.publisher = ws
            self.count = self.acked = 0  # a connection counts its frames from 1
            self._changed.notify_all()
        station = query["estacionId"][0]
        self.log("publisher connected, estacionId", station)
        await self.send({"type": "connected", "role": "publisher", "estacionId": station})
        try:
            async for text in ws:
                if ws is self.publisher:
                    self.count += 1
                    if self.acking and self._acker is None:
                        self._acker = asyncio.create_task(self._ack_later())
                await self._on_frame(text)
        except ConnectionClosed:
            pass
        finally:
            if self.publisher is ws:
                self.publisher = None
            self.log("publisher gone", ws.close_code)

    async def _on_frame(self, text):
        self.log("<-", text)
        try:
            msg = json.loads(text)
        except ValueError:
            msg = text
        async with self._changed:
            self.received.append(msg)
            self._changed.notify_all()
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        if kind == "nfc_scan":
            await self._answer_scan(msg)
        elif kind in ("stop", "emergency") and msg.get("session_id") == self.session:
            self.session = None

    async def _ack_later(self):
        # one ack for every frame read within ack_delay (the real server acks after a commit),
        # to the publisher connected by then (a new connection counts from 1 again)
        try:
            while True:  # until an ack_delay passes with nothing new to ack
                await asyncio.sleep(self.ack_delay)
                if not (self.acking and self.publisher is not None and self.count > self.acked):
                    return
                await self.send_ack(self.count)
        except (ConnectionClosed, CommandError):
            pass
        finally:
            self._acker = None

    async def send_ack(self, n):
        await self.send('{"type":"ack","n":%d}' % n)  # compact, as the real server writes it
        self.acked = max(self.acked, n)

    async def _answer_scan(self, msg):
        if self.reject:
            await self.send(
                {
                    "type": "error",
                    "message": "card %s rejected" % msg.get("nfc_uid"),
                    "code": self.reject,
                }
            )
            return
        self.session = self.next_session
        self.next_session += 1
        await self.send({"type": "start", "session_id": self.session, "user_name": self.user_name})

    async def send(self, msg):
        text = msg if isinstance(msg, str) else json.dumps(msg, ensure_ascii=False)
        if self.publisher is None:
            raise CommandError("no publisher connected")
        self.log("->", text)
        await self.publisher.send(text)

    # ---- commands ----------------------------------------------------------------------
    async def wait_for(self, kind, timeout=30.0):
        """Wait for the next received frame of type `kind` (after the one the previous
        wait_for returned) and return it."""

        def find():
            for i in range(self._cursor, len(self.received)):
                msg = self.received[i]
                if isinstance(msg, dict) and msg.get("type") == kind:
                    return i
            return None

        async def waiter():
            async with self._changed:
                await self._changed.wait_for(lambda: find() is not None)
                i = find()
                self._cursor = i + 1
                return self.received[i]

        try:
            return await asyncio.wait_for(waiter(), timeout)
        except TimeoutError:
            raise CommandError("no %s within %g s" % (kind, timeout)) from None

    async def run_command(self, line):
        """Carry out one command line; CommandError with a reason if it is invalid."""
        words = line.split(None, 1)
        if not words or words[0].startswith("#"):
            return
        cmd, rest = words[0], (words[1] if len(words) > 1 else "").strip()
        if cmd == "stop":
            sid = _int(rest, "stop SESSION") if rest else self.session
            if sid is None:
                raise CommandError("stop: no session is open; give a session id")
            await self.send({"type": "stop", "session_id": sid})
        elif cmd == "sync":
            await self.send({"type": "sync_request", "from": "server"})
        elif cmd == "error":
            code, _, text = rest.partition(" ")
            if not code:
                raise CommandError("usage: error CODE [TEXT]")
            await self.send({"type": "error", "message": text or code, "code": code})
        elif cmd == "send":
            try:
                json.loads(rest)
            except ValueError:
                raise CommandError("send: not valid JSON: %s" % rest) from None
            await self.send(rest)
        elif cmd == "close":
            code_text, _, reason = rest.partition(" ")
            code = _int(code_text, "close CODE [REASON]")
            if not (code in (1000, 1001, 1008, 1011) or 3000 <= code <= 4999):
                raise CommandError("close: code must be 1000, 1001, 1008, 1011 or 3000-4999")
            if self.publisher is None:
                raise CommandError("no publisher connected")
            await self.publisher.close(code, reason)
        elif cmd == "ack":
            await self.send_ack(_int(rest, "ack [N]") if rest else self.count)
        elif cmd == "acks":
            if rest not in ("on", "off"):
                raise CommandError("usage: acks on|off")
            self.acking = rest == "on"
            if self.acking and self.publisher is not None and self._acker is None:
                self._acker = asyncio.create_task(self._ack_later())
        elif cmd == "wait":
            kind, _, secs = rest.partition(" ")
            if not kind:
                raise CommandError("usage: wait TYPE [SECONDS]")
            await self.wait_for(kind, float(_number(secs, "wait TYPE [SECONDS]")) if secs else 30.0)
        elif cmd == "quit":
            self.done.set()
        else:
            raise CommandError("unknown command %r (one of: %s)" % (cmd, ", ".join(COMMANDS)))

    async def wait_publisher(self):
        async with self._changed:
            await self._changed.wait_for(lambda: self.publisher is not None)


def _int(text, usage):
    try:
        return int(text)
    except ValueError:
        raise CommandError("usage: %s (a whole number, got %r)" % (usage, text)) from None


def _number(text, usage):
    try:
        return float(text)
    except ValueError:
        raise CommandError("usage: %s (a number, got %r)" % (usage, text)) from None


# ---- command line ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, "fakeserver: error: %s\n" % message)


def _port(text):
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("port must be 0..65535")
    return value


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return value


def _delay(text):
    value = float(text)
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError("must be a number of seconds from 0 to 60")
    return value


def _code(text):
    if not text or not text.replace("_", "").isalnum():
        raise argparse.ArgumentTypeError("an error code such as CARD_UNKNOWN")
    return text


def parse_args(argv):
    p = _Parser(
        prog="python -m tools.fakeserver",
        description="A scriptable fake server for bench-testing the charger firmware.",
    )
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=_port, default=3000, help="port (default 3000; 0: any)")
    p.add_argument("--station", type=_positive, help="accept only this estacionId (else 4005)")
    p.add_argument("--token", help="require this token (else close 4003)")
    p.add_argument(
        "--session-id",
        type=_positive,
        default=1001,
        help="session id of the first start (default 1001)",
    )
    p.add_argument("--user-name", default="Juan Pérez", help="user_name sent with start")
    p.add_argument(
        "--reject",
        type=_code,
        metavar="CODE",
        help="answer every nfc_scan with this error code instead of start",
    )
    p.add_argument(
        "--no-ack",
        dest="ack",
        action="store_false",
        help="never send acks by themselves (the `ack` command still does)",
    )
    p.add_argument(
        "--ack-delay",
        type=_delay,
        default=0.2,
        metavar="SECONDS",
        help="at most one ack per this many seconds (default 0.2)",
    )
    p.add_argument(
        "--script",
        type=argparse.FileType("r", encoding="utf-8"),
        help="run these commands once the publisher is connected, then quit",
    )
    return p.parse_args(argv)


async def _stdin_lines():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        raw = await reader.readline()
        if not raw:
            return
        yield raw.decode("utf-8", "replace").strip()


async def _run_script(fake, lines):
    await fake.wait_publisher()
    for line in lines:
        try:
            await fake.run_command(line)
        except CommandError as e:
            fake.log("script error:", e)
            return 1
        if fake.done.is_set():
            break
    return 0


async def _run_stdin(fake):
    try:
        async for line in _stdin_lines():
            try:
                await fake.run_command(line)
            except CommandError as e:
                fake.log("error:", e)
            if fake.done.is_set():
                return
    except (OSError, ValueError):
        pass  # no usable stdin (e.g. /dev/null): serve until killed
    await asyncio.Event().wait()


async def amain(args):
    fake = FakeServer(
        host=args.host,
        port=args.port,
        station=args.station,
        token=args.token,
        session_id=args.session_id,
        user_name=args.user_name,
        reject=args.reject,
        ack=args.ack,
        ack_delay=args.ack_delay,
    )
    try:
        await fake.start()
    except OSError as e:
        print(
            "fakeserver: error: cannot listen on %s:%d: %s" % (args.host, args.port, e.strerror),
            file=sys.stderr,
        )
        return 1
    try:
        if args.script:
            lines = args.script.read().splitlines()
            return await _run_script(fake, lines)
        runner = asyncio.create_task(_run_stdin(fake))
        await fake.done.wait()
        runner.cancel()
        return 0
    finally:
        await fake.stop()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
