"""Server configuration: defaults < `.env` file < environment < command-line flags.

`load_config(argv, environ, dotenv_path)` returns a validated, frozen `Config` or raises
`ConfigError` with one line a person can act on; `python -m server` prints that line and exits
non-zero. Variables (documented in `.env.example`): HOST, PORT, DB_PATH, DATABASE_URL, DEFAULT_TARIFF,
LOG_LEVEL, PING_INTERVAL, PING_TIMEOUT, AUTH, SECRET_FILE, TLS_CERT, TLS_KEY, MAX_FRAME_BYTES,
RATE_LIMIT, RATE_BURST, HANDSHAKE_TIMEOUT, MAX_CONNECTIONS, ALLOWED_ORIGINS, TAP_DEBOUNCE,
CARD_STOP_MIN_AGE, CURRENCY_SYMBOL, CURRENCY_DECIMALS, FIRMWARE_DIR, NATS_URL, SERVER_ID. Every number has a lower and an upper
bound. The `.env` file is read with python-dotenv and never copied into the process
environment; a line it cannot read (no `=`, not `NAME=value`) stops the start with its line
number instead of being skipped with a warning.

Storage: SQLite at DB_PATH unless DATABASE_URL (or `--database-url`) names a PostgreSQL
database (`postgresql://user@host[:port]/database`); DB_PATH's directory still holds the
signing secret (SECRET_FILE) either way.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from server.storage.select import check_database_url
from server.storage.values import MAX_TARIFF

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# a charger's outbox holds at most 200 readings and 32 events: RATE_BURST must let a whole
# replay through (firmware/charger/outbox.py)
OUTBOX_REPLAY = 232
# the closing handshake with a peer that stopped answering is given this long at most before
# the TCP connection is dropped (a live peer answers a close in milliseconds)
MAX_CLOSE_TIMEOUT_S = 2.0


class ConfigError(ValueError):
    """A configuration value that cannot work; the message is one line for the operator."""


@dataclass(frozen=True)
class Config:
    host: str = "0.0.0.0"
    port: int = 3000
    db_path: Path = Path("data/evse.sqlite3")
    database_url: str | None = None  # postgresql://...: PostgreSQL instead of the SQLite file
    default_tariff: float = 7.0
    log_level: str = "INFO"
    # keepalive: a charger silent from one moment on is desconectado within offline_detection_s
    # (5 + 6 + 2 = 13 s by default; 12 pings a minute per connection)
    ping_interval: float = 5.0
    ping_timeout: float = 6.0
    demo: bool = False
    auth: bool = True  # AUTH=off: bench use only, warned about at every start
    secret_file: Path | None = None  # None: "secret.key" next to the database
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_frame_bytes: int = 4096  # larger frames are closed with 1009
    rate_limit: float = 10.0  # messages per second per connection (token bucket refill)
    rate_burst: int = 300  # bucket size: more than a charger's whole outbox replay (232)
    handshake_timeout: float = 10.0
    max_connections: int = 10000
    allowed_origins: tuple[str, ...] = ()  # besides the server's own origin
    tap_debounce: float = 2.0  # seconds: a repeated tap of the same card within it is ignored
    card_stop_min_age: float = 5.0  # seconds: tap-again-to-stop needs a session this old
    # how the dashboard and exports show money: "$" before the amount, 2 decimals; the
    # symbol may be empty (amounts only)
    currency_symbol: str = "$"
    currency_decimals: int = 2
    firmware_dir: Path | None = None  # None: "firmware/" next to the database (update bundles)
    # a fleet of server processes (server/cluster/): NATS_URL with a PostgreSQL DATABASE_URL
    nats_url: str | None = None
    server_id: str = ""  # "" = this host's name and this process's id

    @property
    def secret_path(self) -> Path:
        return (
            self.secret_file if self.secret_file is not None else self.db_path.parent / "secret.key"
        )

    @property
    def storage_target(self) -> str | Path:
        """What server.storage.open_storage opens: the PostgreSQL URL, else the SQLite file."""
        return self.database_url if self.database_url is not None else self.db_path

    @property
    def storage_name(self) -> str:
        """The database as messages name it (a URL without its password)."""
        if self.database_url is None:
            return str(self.db_path)
        parts = urlsplit(self.database_url)
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        return parts._replace(netloc=f"{user}@{netloc[2]}" if netloc[1] else netloc[2]).geturl()

    @property
    def firmware_path(self) -> Path:
        """Where the chargers' update bundles are (server/firmware.py)."""
        return (
            self.firmware_dir if self.firmware_dir is not None else self.db_path.parent / "firmware"
        )

    @property
    def close_timeout(self) -> float:
        """Seconds the closing handshake may take before the TCP connection is dropped."""
        return min(MAX_CLOSE_TIMEOUT_S, self.ping_timeout)

    @property
    def offline_detection_s(self) -> float:
        """Worst case from a peer's last answer to its connection being dropped (a charger then
        shows `desconectado`): the next ping comes at most ping_interval later, its pong is
        awaited ping_timeout, then the close frame close_timeout (websockets' keepalive)."""
        return self.ping_interval + self.ping_timeout + self.close_timeout

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def log_level_number(self) -> int:
        return getattr(logging, self.log_level)


# variable -> (Config field, parser)
def _count(low: int, high: int):
    def parse(text: str) -> int:
        if not text.strip().isdecimal() or not low <= int(text) <= high:  # isdigit() takes "²"
            raise ValueError(f"must be an integer from {low} to {high}")
        return int(text)

    return parse


_port = _count(0, 65535)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number >= 0")
    return value


def _bounded(rule: str, low: float, high: float, low_open: bool = False):
    """A number from low (excluded when `low_open`) to high; anything else, nan and inf
    included, "must be <rule>"."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"must be {rule}") from None
        if not (low < value if low_open else low <= value) or not value <= high:
            raise ValueError(f"must be {rule}")
        return value

    return parse


def _positive(high: float):
    return _bounded(f"a finite number greater than 0 and at most {high:g}", 0, high, low_open=True)


def _tariff(text: str) -> float:
    value = _non_negative(text)
    if value > MAX_TARIFF:
        raise ValueError(f"must be a price per kWh from 0 to {MAX_TARIFF:g}")
    return value


def _currency_symbol(text: str) -> str:
    symbol = text.strip()
    if len(symbol) > 8 or any(not c.isprintable() or c in "<>&\"'" for c in symbol):
        raise ValueError("must be at most 8 printable characters (no < > & quotes), or empty")
    return symbol


def _seconds(low: float, high: float):
    return _bounded(f"a number of seconds from {low:g} to {high:g}", low, high)


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def _host(text: str) -> str:
    if not text.strip() or any(c.isspace() for c in text.strip()):
        raise ValueError("must be a host name or address")
    return text.strip()


def _db_path(text: str) -> Path:
    if not text.strip():
        raise ValueError("must be a file path")
    return Path(text.strip())


def _database_url(text: str) -> str | None:
    return check_database_url(text) if text.strip() else None


def _on_off(text: str) -> bool:
    word = text.strip().lower()
    if word not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise ValueError("must be on or off")
    return word in ("on", "true", "1", "yes")


def _optional_file(text: str) -> Path | None:
    return Path(text.strip()) if text.strip() else None


def _origins(text: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
    for origin in origins:
        if not origin.startswith(("http://", "https://")) or any(c.isspace() for c in origin):
            raise ValueError("must be a comma-separated list of http(s)://host[:port] origins")
    return origins


def _nats_url(text: str) -> str | None:
    urls = [u.strip() for u in text.split(",") if u.strip()]
    for url in urls:
        if not url.startswith(("nats://", "tls://")) or any(c.isspace() for c in url):
            raise ValueError("must be nats://host:port (or a comma-separated list of them)")
    return ",".join(urls) or None


def _server_id(text: str) -> str:
    name = text.strip()
    if not 0 < len(name) <= 64 or not all(c.isalnum() or c in "._-" for c in name):
        raise ValueError("must be 1 to 64 letters, digits, '.', '_' or '-'")
    return name


_VARIABLES = {
    "HOST": ("host", _host),
    "PORT": ("port", _port),
    "DB_PATH": ("db_path", _db_path),
    "DATABASE_URL": ("database_url", _database_url),
    "DEFAULT_TARIFF": ("default_tariff", _tariff),
    "LOG_LEVEL": ("log_level", _log_level),
    "PING_INTERVAL": ("ping_interval", _positive(3600)),
    "PING_TIMEOUT": ("ping_timeout", _positive(3600)),
    "AUTH": ("auth", _on_off),
    "SECRET_FILE": ("secret_file", _optional_file),
    "TLS_CERT": ("tls_cert", _optional_file),
    "TLS_KEY": ("tls_key", _optional_file),
    "MAX_FRAME_BYTES": ("max_frame_bytes", _count(256, 1024 * 1024)),
    "RATE_LIMIT": ("rate_limit", _positive(1_000_000)),
    # documented: more than a charger's whole outbox replay (200 readings + 32 events)
    "RATE_BURST": ("rate_burst", _count(OUTBOX_REPLAY + 1, 100_000)),
    "HANDSHAKE_TIMEOUT": ("handshake_timeout", _positive(600)),
    "MAX_CONNECTIONS": ("max_connections", _count(1, 1_000_000)),
    "ALLOWED_ORIGINS": ("allowed_origins", _origins),
    "TAP_DEBOUNCE": ("tap_debounce", _seconds(0, 60)),
    "CARD_STOP_MIN_AGE": ("card_stop_min_age", _seconds(0, 3600)),
    "CURRENCY_SYMBOL": ("currency_symbol", _currency_symbol),
    "CURRENCY_DECIMALS": ("currency_decimals", _count(0, 4)),
    "FIRMWARE_DIR": ("firmware_dir", _optional_file),
    "NATS_URL": ("nats_url", _nats_url),
    "SERVER_ID": ("server_id", _server_id),
}
_SECRET_VALUES = frozenset({"DATABASE_URL"})  # may hold a password: never echoed
_FLAGS = {"host": "HOST", "port": "PORT", "db": "DB_PATH", "database_url": "DATABASE_URL"}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise ConfigError(f"invalid arguments: {message}")


def _argument_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m server", description="EV charger server (WebSocket + HTTP)")
    parser.add_argument("--host", help="address to bind (env HOST, default 0.0.0.0)")
    parser.add_argument("--port", help="TCP port (env PORT, default 3000; 0 = any free port)")
    parser.add_argument("--db", help="SQLite file (env DB_PATH, default data/evse.sqlite3)")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL instead of SQLite: "
        "postgresql://user@host[:port]/database (env DATABASE_URL)",
    )
    parser.add_argument("--demo", action="store_true", help="seed the demo station, user and card")
    return parser


def load_config(argv=None, environ=None, dotenv_path=".env") -> Config:
    """Merge the sources, validate every value, check the database directory is writable."""
    values: dict[str, str] = {}
    if dotenv_path and Path(dotenv_path).is_file():
        values.update(read_dotenv(Path(dotenv_path)))
    environ = os.environ if environ is None else environ
    values.update({k: environ[k] for k in _VARIABLES if k in environ})
    args = _argument_parser().parse_args([] if argv is None else argv)
    if args.db is not None and args.database_url is None:
        values.pop("DATABASE_URL", None)  # `--db FILE` on the command line means that SQLite file
    for flag, variable in _FLAGS.items():
        if getattr(args, flag) is not None:
            values[variable] = getattr(args, flag)

    fields = {}
    for variable, (name, parse) in _VARIABLES.items():
        if variable in values:
            try:
                fields[name] = parse(values[variable])
            except ValueError as problem:
                shown = "" if variable in _SECRET_VALUES else f"={values[variable]!r}"  # a password
                raise ConfigError(f"invalid {variable}{shown}: {problem}") from None
    config = Config(demo=args.demo, **fields)
    config = check_cluster(config)
    check_db_writable(config.db_path)
    check_tls_files(config)
    return config


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of a `.env` file; a line that is not `NAME=value` (a comment or blank
    line aside) raises ConfigError naming the file and the line number. python-dotenv alone
    warns and skips such a line, and the server would start with the default instead."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as problem:
        why = getattr(problem, "strerror", None) or problem
        raise ConfigError(f"cannot read {path}: {why}") from None
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        shown = binding.original.string.strip()[:60]
        if binding.error:
            raise ConfigError(f"{path} line {line}: cannot read {shown!r}: expected NAME=value")
        if binding.key is None:  # a comment or a blank line
            continue
        if binding.value is None:
            raise ConfigError(f"{path} line {line}: {shown!r} has no '=': expected NAME=value")
        if not binding.key.isidentifier():
            raise ConfigError(f"{path} line {line}: {binding.key!r} is not a variable name")
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def check_cluster(config: Config) -> Config:
    """A fleet (NATS_URL) shares one PostgreSQL database: NATS without it is refused. The
    server's id defaults to HOSTNAME-PID."""
    if config.nats_url and not config.database_url:
        raise ConfigError(
            "NATS_URL needs DATABASE_URL=postgresql://...: the processes of a fleet "
            "share one PostgreSQL database (SQLite serves a single process)"
        )
    if not config.server_id:
        config = dataclasses.replace(config, server_id=f"{socket.gethostname()}-{os.getpid()}"[:64])
    return config


def check_tls_files(config: Config) -> None:
    """TLS needs both files, readable; one without the other is a mistake, not plain ws://."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("TLS_CERT and TLS_KEY must be given together (or neither)")
    for name, path in (("TLS_CERT", config.tls_cert), ("TLS_KEY", config.tls_key)):
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            raise ConfigError(f"invalid {name}={str(path)!r}: not a readable file")


def check_db_writable(db_path: Path) -> None:
    """Create the database directory if needed; fail with one line if it cannot be written."""
    if db_path.is_dir():
        raise ConfigError(f"invalid DB_PATH={str(db_path)!r}: is a directory, expected a file")
    directory = db_path.parent
    if directory.exists() and not directory.is_dir():
        raise ConfigError(
            f"invalid DB_PATH={str(db_path)!r}: {str(directory)!r} is not a directory"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as problem:
        raise ConfigError(
            f"cannot create database directory {str(directory)!r}: {problem.strerror}"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK) or (
        db_path.exists() and not os.access(db_path, os.W_OK)
    ):
        raise ConfigError(f"database {str(db_path)!r} is not writable")
