"""`make cluster`: a local fleet — PostgreSQL, nats-server, N server processes, HAProxy in front.

    python -m tools.cluster [--processes N] [--host H] [--port P] [--stats-port P]

Starts a throwaway PostgreSQL and nats-server (tools/services.py), then N `python -m server`
processes (`DATABASE_URL`, `NATS_URL`, `SERVER_ID` s1..sN, one shared `SECRET_FILE`, each on
its own loopback port; the first seeds the demo station, user and card, the others start once
it has migrated the database), then HAProxy (Debian's `haproxy`; TCP mode, `leastconn`, an HTTP
health check of `/healthz` every 2 s, 3 failed in a row mark a process down and shut its
connections so its chargers reconnect to another at once) on HOST:PORT for chargers and dashboards alike. Prints
the URLs (balancer, dashboard with a token, each process, HAProxy's stats page) and stops
everything on Ctrl-C (SIGINT or SIGTERM). Nothing is left behind: the database, the secret and
the logs live in a temporary directory.

`Cluster` is the same fleet for code (the test, `make bench-cluster`):

    async with Cluster(database_url, nats_url, processes=2) as fleet:
        fleet.balancer_url          # ws://127.0.0.1:PORT/ws
        fleet.members[0].url        # one process, bypassing the balancer
        await fleet.kill(0)         # SIGKILL one process

Errors an operator can meet (no haproxy, no PostgreSQL, a port in use, a process that does
not start) are one line on stderr and exit 1; a bad argument is exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from server.auth import ADMIN, load_or_create_secret, mint_token
from server.storage.demo import DEMO_CARD_UID, DEMO_KEY_FILE
from tools import services

REPO = Path(__file__).resolve().parents[1]
MAX_PROCESSES = 16
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
HEALTH_CHECK_MS = (
    2000  # HAProxy checks /healthz this often; 3 failures (5 s each) mark a process down
)
DASHBOARD_TOKEN_DAYS = 7.0
_LISTENING = re.compile(rb"listening on [^\s]*:(\d+)")


class ClusterError(RuntimeError):
    """The fleet could not be started; the message says which part and why."""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
    )
    if not found:
        raise ClusterError("HAProxy is not installed: apt-get install haproxy")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (HAProxy cannot report a port the kernel picked)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def haproxy_maxconn(wanted: int) -> int:
    """`wanted` connections, or what the open-files limit allows: HAProxy needs two files per
    proxied connection and refuses to start when it cannot raise its limit to that. The soft
    limit is lifted to the hard one (the server processes inherit it too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard == resource.RLIM_INFINITY:
        return wanted
    return max(100, min(wanted, (hard - 100) // 2))


def haproxy_config(
    members: list[Member], host: str, port: int, stats_port: int, socket_path: Path, maxconn: int
) -> str:
    """HAProxy in TCP mode: WebSockets and HTTP pass through untouched (TLS, if any, stays on
    the servers), each new connection goes to the process with the fewest, a process that fails
    three health checks in a row gets no new connection and its open ones are shut."""
    servers = "\n".join(
        f"    server {member.name} 127.0.0.1:{member.port} check" for member in members
    )
    return f"""global
    maxconn {maxconn}
    stats socket {socket_path} mode 600 level admin

defaults
    mode tcp
    timeout connect 5s
    # a WebSocket is quiet for at most a ping interval (server 5 s, charger 10 s)
    timeout client 120s
    timeout server 120s

frontend evse
    bind {host}:{port}
    default_backend servers

backend servers
    balance leastconn
    # a connect refused by a process not yet marked down goes to another one
    option redispatch
    retries 2
    option httpchk GET /healthz
    http-check expect status 200
    # a process marked down gets its connections shut (its chargers reconnect to another):
    # only one that stays silent, not one slow under load (that would move all its chargers
    # at once onto the others). A killed process refuses the check at once.
    timeout check 5s
    default-server inter {HEALTH_CHECK_MS}ms fall 3 rise 2 on-marked-down shutdown-sessions
{servers}

listen stats
    bind {host}:{stats_port}
    mode http
    timeout client 30s
    stats enable
    stats uri /
    stats refresh 5s
"""


@dataclass
class Member:
    """One `python -m server` process of the fleet."""

    name: str
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    port: int | None = None
    _log_task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, env: dict, db_path: Path, demo: bool) -> None:
        # DB_PATH, not --db: on the command line --db means that SQLite file even with
        # DATABASE_URL set; as a variable it only places the directory of the demo key
        env = {**env, "DB_PATH": str(db_path)}
        args = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0"]
        self.process = await asyncio.create_subprocess_exec(
            *args,
            *(["--demo"] if demo else []),
            cwd=REPO,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )  # a terminal's Ctrl-C reaches the launcher, which stops it in order
        port = asyncio.get_running_loop().create_future()
        self._log_task = asyncio.create_task(self._copy_log(port))
        try:
            self.port = await asyncio.wait_for(port, START_TIMEOUT_S)
        except (TimeoutError, ClusterError):
            await self.stop()
            raise ClusterError(
                f"server {self.name} did not start: {self.log_tail(5) or 'no output'} "
                f"(log {self.log_path})"
            ) from None

    async def _copy_log(self, port: asyncio.Future) -> None:
        with open(self.log_path, "wb") as log:
            while line := await self.process.stdout.readline():
                log.write(line)
                log.flush()
                found = _LISTENING.search(line)
                if found and not port.done():
                    port.set_result(int(found.group(1)))
        if not port.done():
            port.set_exception(ClusterError(f"server {self.name} exited"))

    def log_tail(self, lines: int) -> str:
        if not self.log_path.exists():
            return ""
        return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])

    async def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.alive:
            self.process.send_signal(signum)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._log_task is not None:
            with contextlib.suppress(ClusterError):
                await self._log_task


class Cluster:
    """N server processes on one PostgreSQL and one NATS, behind HAProxy (async context)."""

    def __init__(
        self,
        database_url: str,
        nats_url: str,
        processes: int = 3,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stats_port: int = 0,
        env: dict | None = None,
        demo: bool = True,
        maxconn: int = 20_000,
        workdir: Path | None = None,
    ):
        if not 1 <= processes <= MAX_PROCESSES:
            raise ClusterError(f"processes must be 1..{MAX_PROCESSES}, not {processes}")
        self.database_url, self.nats_url = database_url, nats_url
        self.host, self.maxconn, self.demo = host, maxconn, demo
        self.port = port or free_port(host)
        self.stats_port = stats_port or free_port(host)
        self.extra_env = dict(env or {})
        self._own_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="evse-cluster-")) if workdir is None else workdir
        )
        self.secret_file = self.workdir / "secret.key"
        self.members = [
            Member(f"s{index}", self.workdir / f"s{index}.log") for index in range(1, processes + 1)
        ]
        self.haproxy: asyncio.subprocess.Process | None = None
        self.haproxy_log = self.workdir / "haproxy.log"
        self.socket_path = self.workdir / "haproxy.sock"

    # --- URLs ----------------------------------------------------------------------------
    @property
    def shown_host(self) -> str:
        return "localhost" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def balancer_url(self) -> str:
        return f"ws://{self.shown_host}:{self.port}/ws"

    @property
    def stats_url(self) -> str:
        return f"http://{self.shown_host}:{self.stats_port}/"

    def dashboard_token(self) -> str:
        return mint_token(
            load_or_create_secret(self.secret_file),
            "make-cluster",
            ADMIN,
            days=DASHBOARD_TOKEN_DAYS,
        )

    def demo_key(self) -> str | None:
        path = self.workdir / DEMO_KEY_FILE
        return path.read_text(encoding="ascii").strip() if path.is_file() else None

    # --- life ----------------------------------------------------------------------------
    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def _env(self, member: Member) -> dict:
        return {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": self.database_url,
            "NATS_URL": self.nats_url,
            "SERVER_ID": member.name,
            "SECRET_FILE": str(self.secret_file),
            **self.extra_env,
        }

    async def start(self) -> None:
        binary = haproxy_binary()
        db_path = (
            self.workdir / "evse.sqlite3"
        )  # not used with DATABASE_URL; its directory holds the demo key
        first, *others = self.members
        await first.start(self._env(first), db_path, self.demo)  # migrates and seeds, alone
        await asyncio.gather(
            *(member.start(self._env(member), db_path, self.demo) for member in others)
        )
        config_path = self.workdir / "haproxy.cfg"
        config_path.write_text(
            haproxy_config(
                self.members,
                self.host,
                self.port,
                self.stats_port,
                self.socket_path,
                haproxy_maxconn(self.maxconn),
            )
        )
        with self.haproxy_log.open("wb") as log:
            self.haproxy = await asyncio.create_subprocess_exec(
                binary,
                "-db",
                "-f",
                str(config_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        await self.wait_until_up(len(self.members))

    async def server_states(self) -> dict[str, str]:
        """{process name: HAProxy's status of it ("UP", "DOWN", ...)} from its stats socket."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        except OSError:
            return {}
        try:
            writer.write(b"show stat\n")
            await writer.drain()
            text = (await reader.read()).decode(errors="replace")
        finally:
            writer.close()
        states = {}
        for line in text.splitlines():
            fields = line.split(",")
            if (
                len(fields) > 17
                and fields[0] == "servers"
                and fields[1] not in ("BACKEND", "FRONTEND")
            ):
                states[fields[1]] = fields[17].split(" ")[0]
        return states

    async def wait_until_up(self, count: int, timeout: float = START_TIMEOUT_S) -> None:
        """Return once HAProxy listens and sees `count` processes UP."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.haproxy.returncode is not None:
                raise ClusterError(
                    "haproxy exited: " + self.haproxy_log.read_text(errors="replace").strip()[-500:]
                )
            states = await self.server_states()
            if sum(state == "UP" for state in states.values()) >= count:
                return
            await asyncio.sleep(0.1)
        raise ClusterError(
            f"HAProxy does not see {count} processes up within {timeout:.0f} s: {states}"
        )

    async def wait_until_down(self, name: str, timeout: float = START_TIMEOUT_S) -> None:
        """Return once HAProxy has marked process `name` down (no new connection goes there)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if (await self.server_states()).get(name, "DOWN") != "UP":
                return
            await asyncio.sleep(0.1)
        raise ClusterError(f"HAProxy still sees {name} up after {timeout:.0f} s")

    async def kill(self, index: int) -> None:
        """SIGKILL one process (a crash): no goodbye to its chargers or dashboards."""
        await self.members[index].stop(signal.SIGKILL)

    def pids(self) -> list[int]:
        return [member.process.pid for member in self.members if member.alive]

    async def stop(self) -> None:
        if self.haproxy is not None and self.haproxy.returncode is None:
            self.haproxy.terminate()
            try:
                await asyncio.wait_for(self.haproxy.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.haproxy.kill()
                await self.haproxy.wait()
        await asyncio.gather(*(member.stop() for member in self.members))
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- what an operator reads ----------------------------------------------------------
    def banner(self) -> str:
        python = (
            os.path.relpath(sys.executable)
            if Path(sys.executable).is_relative_to(Path.cwd())
            else sys.executable
        )
        token = self.dashboard_token()
        key = self.demo_key()
        urls = ",".join(member.url for member in self.members)
        lines = [
            f"EV charger fleet: {len(self.members)} server process{'es' if len(self.members) > 1 else ''}, "
            "PostgreSQL, NATS, HAProxy",
            f"  balancer:   {self.balancer_url} (chargers and dashboards; TCP, leastconn, "
            f"/healthz every {HEALTH_CHECK_MS} ms)",
            f"  dashboard:  http://{self.shown_host}:{self.port}/?token={token}",
        ]
        for member in self.members:
            lines.append(
                f"  process {member.name}: {member.url}, http://127.0.0.1:{member.port}/ "
                f"(SERVER_ID={member.name}, pid {member.process.pid}, log {member.log_path})"
            )
        lines += [
            f"  HAProxy stats: {self.stats_url}",
            f"  DATABASE_URL={self.database_url}",
            f"  NATS_URL={self.nats_url}",
            f"  simulator:  {python} -m tools.simulator --station 1 --card {DEMO_CARD_UID} "
            f"--url {self.balancer_url}" + (f" --token={key}" if key else ""),
            f"  firmware without the balancer (server_urls): make sim-charger SERVER_URL={urls} STATION=1"
            + (f" TOKEN={key}" if key else "")
            + " (then type: tap 04C0FFEE)",
            f"  kill a process to see failover: kill -9 {self.members[0].process.pid}",
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)


# --- command line ------------------------------------------------------------------------
def _bounded_int(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return parse


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.cluster", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--processes",
        "-n",
        type=_bounded_int(1, MAX_PROCESSES),
        default=3,
        help="server processes (default 3)",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address HAProxy binds (default 0.0.0.0)")
    parser.add_argument(
        "--port",
        type=_bounded_int(0, 65535),
        default=3000,
        help="the balancer's port (default 3000; 0: a free one)",
    )
    parser.add_argument(
        "--stats-port",
        type=_bounded_int(0, 65535),
        default=0,
        help="HAProxy's stats page (default: a free port)",
    )
    return parser.parse_args(argv)


async def run(args) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    with services.postgres() as pg, services.nats() as bus:
        async with Cluster(
            pg.url,
            bus.url,
            args.processes,
            host=args.host,
            port=args.port,
            stats_port=args.stats_port,
        ) as fleet:
            print(fleet.banner(), flush=True)
            await stop.wait()
            print("cluster: stopping", flush=True)
    print("cluster: stopped", flush=True)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        haproxy_binary()
        asyncio.run(run(args))
    except (ClusterError, services.ServiceUnavailable) as problem:
        print(f"cluster: error: {problem}", file=sys.stderr)
        return 1
    except RuntimeError as problem:  # services: initdb/pg_ctl/nats-server failed
        print(f"cluster: error: {str(problem).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while PostgreSQL or NATS was starting: they are stopped
        print("cluster: stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
