"""The bare websockets relay: the physical ceiling the server is measured against.

`python -m tools.bench.baseline_relay [--host 127.0.0.1] [--port 0]` prints one JSON line
`{"port": N}` once it listens, then serves until SIGTERM or SIGINT.

It speaks just enough of the seed protocol for the load generator to run the same script
against it as against the real server: a publisher gets `connected`, a client gets
`subscribed`, `nfc_scan` is answered with `start`, `stop` is broadcast as `session_ended`, and
every `metrics` frame is parsed and re-encoded once as the dashboard's `metrics` message and
broadcast to the station's clients (`websockets.broadcast`), and to the `estacionId=all` clients. No database, no validation, no session rules, no billing: whatever
the server spends beyond this relay is the cost of its own work.

`GET /stats` answers `{"metrics": <frames relayed so far>}` so the benchmark can tell when the
relay has caught up with everything that was sent.
"""

import argparse
import asyncio
import itertools
import json
import signal
import sys
from collections import defaultdict
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import broadcast, serve


class Relay:
    """Per-station sets of dashboard connections and the relay's one counter."""

    def __init__(self):
        self.clients = defaultdict(set)
        self.metrics_relayed = 0
        self._session_ids = itertools.count(1)

    def stats(self, connection, request):
        """websockets `process_request` hook: plain HTTP `GET /stats`, anything else upgrades."""
        if request.path == "/stats":
            body = json.dumps({"metrics": self.metrics_relayed})
            response = connection.respond(HTTPStatus.OK, body + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        return None

    async def handle(self, connection):
        query = parse_qs(urlsplit(connection.request.path).query)
        role = query.get("role", [""])[0]
        station = query.get("estacionId", [""])[0]
        if not station:
            await connection.close(4004 if role == "publisher" else 4006, "estacionId required")
        elif role == "publisher":
            await self._publisher(connection, station)
        elif role == "client":
            await self._client(connection, station)
        else:
            await connection.close(4001, "role must be publisher or client")

    async def _publisher(self, connection, station):
        await connection.send(
            json.dumps({"type": "connected", "role": "publisher", "estacionId": station})
        )
        charger_id = int(station) if station.isdigit() else station
        async for frame in connection:
            try:
                message = json.loads(frame)
                kind = message.get("type")
            except (ValueError, AttributeError):
                continue  # not a JSON object: a relay has no error replies, it drops the frame
            if kind == "metrics":
                self.metrics_relayed += 1
                outbound = {
                    "type": "metrics",
                    "session_id": message.get("session_id"),
                    "charger_id": charger_id,
                    "v": message.get("v"),
                    "a": message.get("a"),
                    "w": message.get("w"),
                    "kwh": 0.0,
                    "cost": 0.0,
                    "time": 0,
                }
                broadcast(
                    self.clients[station] | self.clients["all"],
                    json.dumps(outbound, separators=(",", ":")),
                )
            elif kind == "stop":
                ended = {
                    "type": "session_ended",
                    "session_id": message.get("session_id"),
                    "charger_id": charger_id,
                }
                broadcast(self.clients[station] | self.clients["all"], json.dumps(ended))
            elif kind == "nfc_scan":
                start = {
                    "type": "start",
                    "session_id": next(self._session_ids),
                    "user_name": "Bench",
                }
                await connection.send(json.dumps(start))

    async def _client(self, connection, station):
        self.clients[station].add(connection)
        try:
            await connection.send(json.dumps({"type": "subscribed", "estacionId": station}))
            await connection.wait_closed()
        finally:
            self.clients[station].discard(connection)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.baseline_relay", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=0, help="port to bind; 0 picks a free one (default)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    return args


async def serve_until_signalled(host: str, port: int) -> None:
    relay = Relay()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    async with serve(
        relay.handle, host, port, process_request=relay.stats, compression=None
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": bound}), flush=True)
        await stop.wait()


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve_until_signalled(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
