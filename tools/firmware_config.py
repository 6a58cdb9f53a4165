"""Write the board's `config.json` from flags, environment variables or prompts (`make config`).

    python -m tools.firmware_config [--out firmware/config.json] [--ssid S] [--password P]
        [--server-url ws://HOST:3000/ws[,ws://HOST2:3000/ws...]] [--station N] [--token T] [--pins '{"relay": 4}']
        [--metrics-interval S] [--no-input]

Every value can also come from the environment (WIFI_SSID, WIFI_PASSWORD, SERVER_URL,
STATION, TOKEN, PINS); a flag wins over the environment, and an empty value given on purpose
(`TOKEN=` for a server without keys, `WIFI_PASSWORD=` for an open network) counts as given.
On a terminal, what is missing is asked for (the WiFi password without echo, getpass); without
one (or with --no-input) every required value (SSID, password, server URL, station, token)
must be given, or nothing is written and the missing names are listed: exit 2.

Checked before anything is written: the firmware's own `charger.config.validate` and its URL
parser (`charger.linkcfg.parse_url`), then what the board needs beyond that: the SSID (1-32
bytes, printable), the WPA2 password (empty, 8-63 characters or 64 hex digits), the server URL
(a host, no query: the charger adds it; a path other than /ws is warned about; several URLs
separated by commas become the charger's `server_urls`, tried in turn), and the pins
against the ESP32 (tools/esp32_pins.py: flash pins, input-only pins, duplicates are errors;
strapping pins are warnings). An error is one line `config error: ...` on stderr, exit 2;
warnings go to stderr and the file is written. The file holds the WiFi password and the
station key: it is written readable by its owner only (0600).
"""

import argparse
import getpass
import json
import os
import re
import sys
from pathlib import Path

from tools.firmware_paths import FIRMWARE

sys.path.insert(0, str(FIRMWARE))

from charger.config import ConfigError, validate  # noqa: E402
from charger.linkcfg import parse_url  # noqa: E402
from tools.esp32_pins import check_pins  # noqa: E402

FIELDS = (  # (flag, env, prompt, default offered on a terminal)
    ("ssid", "WIFI_SSID", "WiFi network name (SSID)", None),
    ("password", "WIFI_PASSWORD", "WiFi password (not shown; empty for an open network)", None),
    (
        "server_url",
        "SERVER_URL",
        "server URL, e.g. ws://192.168.1.10:3000/ws (several: comma-separated, tried in turn)",
        None,
    ),
    ("station", "STATION", "station id (the charger's estacionId)", "1"),
    (
        "token",
        "TOKEN",
        "station key (python -m server.admin stations issue-key N; empty for none)",
        "",
    ),
)
MAX_STATION = 2**31 - 1
MAX_SERVER_URLS = 8  # charger/config.py's bound


def _given(args) -> dict:
    """The values given by flag or environment (None: not given)."""
    values = {}
    for key, env, _, _ in FIELDS:
        value = getattr(args, key)
        values[key] = value if value is not None else os.environ.get(env)
    return values


def _ask(values: dict) -> None:
    """Prompt on the terminal for each value not given; the password without echo."""
    for key, env, prompt, default in FIELDS:
        while values[key] is None:
            shown = f" [{default}]" if default else ""
            if key == "password":
                answer = getpass.getpass(f"{prompt}: ")
            else:
                answer = input(f"{prompt}{shown}: ").strip()
            if answer or key in ("password", "token"):
                values[key] = answer
            elif default is not None:
                values[key] = default
            else:
                print(f"  {env} is required", file=sys.stderr)


def _check_board_values(values: dict) -> None:
    """What the firmware's validate() leaves to the board; raises ConfigError."""
    ssid = values["ssid"]
    if not ssid or len(ssid.encode()) > 32 or not ssid.isprintable():
        raise ConfigError("wifi.ssid must be 1 to 32 bytes of printable text (the network's name)")
    password = values["password"]
    if (
        password
        and not (8 <= len(password) <= 63 and password.isprintable())
        and not re.fullmatch(r"[0-9A-Fa-f]{64}", password)
    ):
        raise ConfigError(
            "wifi.password must be empty (an open network), 8 to 63 printable "
            "characters, or 64 hex digits (WPA2)"
        )
    for url in server_urls(values["server_url"]):
        try:
            host, _port, resource, _ = parse_url(url)
        except ValueError as problem:
            raise ConfigError(
                f"server_url: {problem}; expected ws://HOST:PORT/ws or wss://..."
            ) from None
        if "?" in resource or "#" in url or not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host):
            raise ConfigError(
                f"server_url {url!r}: expected ws://HOST:PORT/ws with no query "
                "(the charger adds role, estacionId and token)"
            )
    station = values["station"]
    if not station.strip().isdecimal() or not 1 <= int(station) <= MAX_STATION:
        raise ConfigError(
            f"station must be a positive integer up to {MAX_STATION}, not {station!r}"
        )


def server_urls(text: str) -> list[str]:
    """SERVER_URL as a list: one URL, or several separated by commas (the charger's
    `server_urls`: it tries the next one when a connect fails)."""
    urls = [url.strip() for url in text.split(",")]
    if len(urls) > MAX_SERVER_URLS:
        raise ConfigError(f"server_url: at most {MAX_SERVER_URLS} URLs, not {len(urls)}")
    return urls


def _collect(args) -> tuple[dict, list[str]]:
    """The raw config and warnings; raises ConfigError."""
    example = json.loads((FIRMWARE / "config.example.json").read_text())
    values = _given(args)
    missing = [env for key, env, _, _ in FIELDS if values[key] is None]
    if missing:
        if args.no_input or not sys.stdin.isatty():
            raise ConfigError(
                f"missing {', '.join(missing)}: without a terminal every value must be given, "
                "e.g. make config WIFI_SSID=garage WIFI_PASSWORD=... "
                "SERVER_URL=ws://192.168.1.10:3000/ws STATION=1 TOKEN=<station key>; "
                "nothing written"
            )
        _ask(values)
    _check_board_values(values)
    raw = dict(example)
    raw.update(
        {
            "wifi": {"ssid": values["ssid"], "password": values["password"]},
            "station": int(values["station"]),
            "token": values["token"],
        }
    )
    urls = server_urls(values["server_url"])
    if len(urls) > 1:
        del raw["server_url"]
        raw["server_urls"] = urls
    else:
        raw["server_url"] = urls[0]
    pins = args.pins if args.pins is not None else os.environ.get("PINS")
    if pins:
        try:
            given = json.loads(pins)
            if not isinstance(given, dict):
                raise TypeError
            raw["pins"] = {**example["pins"], **given}
        except (ValueError, TypeError):
            raise ConfigError("pins must be a JSON object, e.g. '{\"relay\": 4}'") from None
    if args.metrics_interval is not None:
        raw["metrics_interval_s"] = args.metrics_interval
    warnings = []
    for url in urls:
        if parse_url(url)[2] != "/ws":
            warnings.append(
                f"server_url {url!r}: the server answers on the path "
                "/ws (fine behind a proxy that maps this path)"
            )
    return raw, warnings


def write_private(path: Path, text: str) -> None:
    """Write `text` readable by the owner only (it holds the WiFi password and the key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # also when the file existed with wider permissions


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.firmware_config", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=FIRMWARE / "config.json")
    for key, env, prompt, _ in FIELDS:
        parser.add_argument("--" + key.replace("_", "-"), dest=key, help=f"{prompt} (env {env})")
    parser.add_argument("--pins", help="JSON object overriding pins of the example (env PINS)")
    parser.add_argument("--metrics-interval", type=float)
    parser.add_argument("--no-input", action="store_true", help="never prompt")
    args = parser.parse_args(argv)
    try:
        raw, warnings = _collect(args)
        cfg = validate(raw)
        errors, pin_warnings = check_pins(cfg["pins"])
        if errors:
            raise ConfigError("; ".join(errors))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("\nconfig: cancelled, nothing written", file=sys.stderr)
        return 2
    for warning in warnings + pin_warnings:
        print(f"config warning: {warning}", file=sys.stderr)
    try:
        write_private(args.out, json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    except OSError as problem:
        print(
            f"config error: cannot write {args.out}: {problem.strerror or problem}", file=sys.stderr
        )
        return 2
    print(
        f"wrote {args.out} (station {cfg['station']}, "
        f"{', '.join(cfg.get('server_urls') or [cfg['server_url']])}, "
        f"WiFi {cfg['wifi']['ssid']!r})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
