"""The processes a benchmark runs against: the real server and the bare relay.

A target is started in its own process on 127.0.0.1 with port 0, says which port it got, and
answers one question while the load runs: how many readings has it fully processed so far?

- `ServerTarget`: a fresh SQLite file provisioned through the Storage API (one station and one
  card `BENCH-<n>` per charger, all owned by one user), then `python -m server`. Processed =
  rows in `readings`, counted with a read-only SQLite connection (WAL lets it read while the
  server writes); after the server stops, the final count is taken the same way.
- `RelayTarget`: `python -m tools.bench.baseline_relay`. Processed = its `GET /stats` counter.

The server's log goes to `<workdir>/server.log`; a traceback in it counts as an error.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
import urllib.request
from pathlib import Path

from server.storage import open_storage
from tools.bench.procstat import cpu_seconds, rss_kib

REPO_ROOT = Path(__file__).resolve().parents[2]
CARD_PREFIX = "BENCH-"
START_TIMEOUT_S = 60.0
RATE_LIMIT_DEFAULT = 10.0  # the server's default frames per second per connection
STOP_TIMEOUT_S = 60.0
_LISTENING = re.compile(r"(?:127\.0\.0\.1|localhost):(\d+)")


class TargetError(RuntimeError):
    """The target process could not be started or died; the message says why."""


async def provision(db_path: Path | str, stations: int) -> None:
    """Create stations 1..N (tariff 7.0) and card BENCH-<n> for each, owned by one user."""
    storage = await open_storage(db_path)
    try:
        driver = await storage.add_user("Bench driver")
        for station_id in range(1, stations + 1):
            await storage.add_station(f"Bench {station_id}", 7.0, station_id=station_id)
            await storage.add_card(f"{CARD_PREFIX}{station_id}", driver.id)
    finally:
        await storage.close()


def server_env(rate: float) -> dict:
    """The server's environment under load: one log line per connection would be part of the
    load; AUTH=off and no connection cap: the bench measures the message path (a credential is
    checked once per connection)."""
    env = {"LOG_LEVEL": "WARNING", "AUTH": "off", "MAX_CONNECTIONS": "1000000"}
    if rate > RATE_LIMIT_DEFAULT / 2:
        # saturation runs with few, fast chargers: stay clear of the per-connection limit
        env["RATE_LIMIT"] = str(2 * rate)
    return env


class _Process:
    """A child process started with the repository on its path, stopped with SIGTERM."""

    name = "target"

    def __init__(self):
        self.process: asyncio.subprocess.Process | None = None
        self.port: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def _spawn(self, *args, env=None, stdout=None, stderr=None) -> None:
        environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **(env or {}))
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=REPO_ROOT,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise TargetError(
                f"{self.name} did not stop within {STOP_TIMEOUT_S:.0f} s of SIGTERM"
            ) from None

    def check_alive(self) -> None:
        if self.process.returncode is not None:
            raise TargetError(f"{self.name} exited with code {self.process.returncode}")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    async def final_counts(self) -> tuple[int, int, int] | None:
        """After stop(): (rows in `readings`, database bytes, sessions left open), or None
        when the target stores nothing (the relay)."""
        return None


class RelayTarget(_Process):
    name = "relay"

    async def start(self) -> None:
        await self._spawn(
            "-m", "tools.bench.baseline_relay", "--port", "0", stdout=asyncio.subprocess.PIPE
        )
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), START_TIMEOUT_S)
            self.port = json.loads(line)["port"]
        except (TimeoutError, ValueError, KeyError):
            await self.stop()
            raise TargetError("the relay did not report its port") from None

    async def processed(self) -> int:
        def fetch():
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/stats", timeout=10
            ) as response:
                return json.load(response)["metrics"]

        return await asyncio.to_thread(fetch)

    def problems(self) -> dict:
        return {}

    def log_tail(self, lines: int) -> str:
        return ""


class ServerTarget(_Process):
    name = "server"

    def __init__(self, workdir: Path):
        super().__init__()
        self.db_path = workdir / "bench.sqlite3"
        self.log_path = workdir / "server.log"
        self._log_task: asyncio.Task | None = None

    async def start(self, stations: int, rate: float = 1.0) -> None:
        """Provision `stations` and start the server for chargers sending `rate` readings/s."""
        await provision(self.db_path, stations)
        env = server_env(rate)
        await self._spawn(
            "-m",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            str(self.db_path),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        port = asyncio.get_running_loop().create_future()
        self._log_task = asyncio.create_task(self._copy_log(port))
        try:
            self.port = await asyncio.wait_for(port, START_TIMEOUT_S)
        except TimeoutError:
            await self.stop()
            raise TargetError(f"the server did not report its port; see {self.log_path}") from None

    async def _copy_log(self, port: asyncio.Future) -> None:
        with open(self.log_path, "wb") as log:
            while line := await self.process.stdout.readline():
                log.write(line)
                log.flush()
                found = _LISTENING.search(line.decode(errors="replace"))
                if found and not port.done():
                    port.set_result(int(found.group(1)))
        if not port.done():
            port.set_exception(
                TargetError(f"the server exited before listening; see {self.log_path}")
            )

    async def processed(self) -> int:
        return await asyncio.to_thread(count_rows, self.db_path, "readings")

    async def final_counts(self) -> tuple[int, int, int]:
        return (
            count_rows(self.db_path, "readings"),
            self.database_bytes(),
            count_rows(self.db_path, "sessions", "ended_at IS NULL"),
        )

    async def stop(self) -> None:
        await super().stop()
        if self._log_task is not None:
            await self._log_task

    def database_bytes(self) -> int:
        """Size of the database with its WAL (upper bound of what the readings cost on disk)."""
        files = [self.db_path, self.db_path.with_name(self.db_path.name + "-wal")]
        return sum(path.stat().st_size for path in files if path.exists())

    def problems(self) -> dict:
        """Error kinds read from the server's log: tracebacks, at least."""
        tracebacks = self._log_text().count("Traceback (most recent call last)")
        return {"server_traceback": tracebacks} if tracebacks else {}

    def log_tail(self, lines: int) -> str:
        return "\n".join(self._log_text().splitlines()[-lines:])

    def _log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def count_rows(db_path: Path, table: str, where: str = "1") -> int:
    """Rows of `table` matching `where`, read through a read-only connection (never blocks the
    writer). Both are fixed strings of this package, never input."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]
    finally:
        connection.close()
