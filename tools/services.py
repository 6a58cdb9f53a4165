"""Throwaway PostgreSQL and NATS servers: for the tests, `make cluster` and `make bench-cluster`.

Real engines, never mocks: Debian's `postgresql` (initdb + pg_ctl, listening only on a Unix
socket in a fresh temp directory) and `nats-server` (loopback, a port the kernel picks). Each
starts in about half a second and leaves nothing behind when stopped.

PostgreSQL refuses to run as root, so under root the cluster is created and run as the
unprivileged user `nobody` (`runuser`); its directory is made for that user.

    with postgres() as pg:          # pg.url: postgresql://evse@/evse?host=/tmp/pg...
        ...
    with nats() as bus:             # bus.url: nats://127.0.0.1:PORT
        ...

`python -m tools.services` starts both, prints their URLs, and stops them on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_USER = "evse"
PG_DATABASE = "evse"
UNPRIVILEGED = "nobody"


class ServiceUnavailable(RuntimeError):
    """The engine is not installed here (the message says which Debian package gives it)."""


def pg_bindir() -> Path:
    """The directory of PostgreSQL's server programs (newest installed version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise ServiceUnavailable("PostgreSQL is not installed: apt-get install postgresql")


def _version_key(path: str) -> int:
    match = re.search(r"/postgresql/(\d+)/", path)
    return int(match.group(1)) if match else 0


def nats_binary() -> str:
    found = shutil.which("nats-server")
    if not found:
        raise ServiceUnavailable("nats-server is not installed: apt-get install nats-server")
    return found


def _as_unprivileged(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", UNPRIVILEGED, "--", *argv]


@dataclass
class Postgres:
    """One throwaway PostgreSQL cluster on a Unix socket in `directory`."""

    directory: Path
    bindir: Path

    @property
    def socket_dir(self) -> str:
        return str(self.directory)

    @property
    def url(self) -> str:
        return self.url_for(PG_DATABASE)

    def url_for(self, database: str) -> str:
        return f"postgresql://{PG_USER}@/{database}?host={self.directory}"

    def start(self) -> None:
        data = self.directory / "data"
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                PG_USER,
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        )
        options = f"-k {self.directory} -c listen_addresses='' -c max_connections=200"
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-t",
                "30",
                "-o",
                options,
                "-l",
                str(self.directory / "server.log"),
                "start",
            ]
        )
        self.create_database(PG_DATABASE)

    def create_database(self, name: str) -> str:
        """Create database `name` and return its URL."""
        self._run([str(self.bindir / "createdb"), "-h", str(self.directory), "-U", PG_USER, name])
        return self.url_for(name)

    def stop(self) -> None:
        data = self.directory / "data"
        if (data / "postmaster.pid").exists():
            self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                check=False,
            )

    def _run(self, argv: list[str], check: bool = True) -> None:
        done = subprocess.run(_as_unprivileged(argv), capture_output=True, text=True, cwd="/")
        if check and done.returncode != 0:
            log = self.directory / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()}\n{tail}"
            )


def _private_directory(prefix: str) -> Path:
    # /tmp, not pytest's tmp_path: a Unix socket path must stay under 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam(UNPRIVILEGED)
        os.chown(directory, nobody.pw_uid, nobody.pw_gid)
    return directory


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """A running throwaway PostgreSQL; stopped and deleted on exit."""
    server = Postgres(_private_directory("pg"), pg_bindir())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@dataclass
class Nats:
    """One throwaway nats-server on loopback; its log in `log`."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


_LISTENING = re.compile(r"Listening for client connections on [^\s]*:(\d+)")


def start_nats(timeout: float = 10.0) -> Nats:
    """Start nats-server on a port the kernel picks; returns once it accepts clients."""
    log = Path(tempfile.mkstemp(prefix="nats", suffix=".log", dir="/tmp")[1])
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [nats_binary(), "-a", "127.0.0.1", "-p", "-1"],
            stdout=sink,
            stderr=sink,
            start_new_session=True,  # a terminal's Ctrl-C goes to its owner, which stops it last
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        match = _LISTENING.search(log.read_text(errors="replace"))
        if match:
            return Nats(process, int(match.group(1)), log)
        time.sleep(0.02)
    process.kill()
    process.wait()
    raise RuntimeError("nats-server did not start:\n" + log.read_text(errors="replace"))


def stop_nats(server: Nats) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    server.log.unlink(missing_ok=True)


@contextlib.contextmanager
def nats() -> Iterator[Nats]:
    """A running throwaway nats-server; stopped on exit."""
    server = start_nats()
    try:
        yield server
    finally:
        stop_nats(server)


def main() -> None:
    with postgres() as pg, nats() as bus:
        print(f"DATABASE_URL={pg.url}")
        print(f"NATS_URL={bus.url}")
        print("Ctrl-C stops both.", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
