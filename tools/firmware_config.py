"""Write the board's `config.json` from flags, environment variables or prompts.

    python -m tools.firmware_config [--out firmware/config.json] [--ssid S] [--password P]
        [--server-url ws://HOST:3000/ws] [--station N] [--token T] [--pins '{"relay": 4}']
        [--metrics-interval S] [--no-input]

Every value can also come from the environment (WIFI_SSID, WIFI_PASSWORD, SERVER_URL,
STATION, TOKEN, PINS). Missing values are asked for on a terminal (or taken from
`config.example.json` with --no-input). The result is validated with the firmware's own
`charger.config.validate` before it is written; a bad value is an error message, exit 2.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware"))

from charger.config import ConfigError, validate  # noqa: E402

FIELDS = (  # (flag, env, prompt)
    ("ssid", "WIFI_SSID", "WiFi network name"),
    ("password", "WIFI_PASSWORD", "WiFi password"),
    ("server_url", "SERVER_URL", "server URL (ws://HOST:3000/ws)"),
    ("station", "STATION", "station id"),
    ("token", "TOKEN", "token (empty for none)"),
)


def _collect(args) -> dict:
    example = json.loads((ROOT / "firmware" / "config.example.json").read_text())
    defaults = {"ssid": example["wifi"]["ssid"], "password": example["wifi"]["password"],
                "server_url": example["server_url"], "station": str(example["station"]),
                "token": example["token"]}
    values = {}
    for key, env, prompt in FIELDS:
        val = getattr(args, key) or os.environ.get(env)
        if val is None:
            if args.no_input or not sys.stdin.isatty():
                val = defaults[key]
            else:
                val = input(f"{prompt} [{defaults[key]}]: ").strip() or defaults[key]
        values[key] = val
    try:
        station = int(values["station"])
    except ValueError:
        raise ConfigError("station must be a positive integer")
    raw = dict(example)
    raw.update({"wifi": {"ssid": values["ssid"], "password": values["password"]},
                "server_url": values["server_url"], "station": station,
                "token": values["token"]})
    pins = args.pins or os.environ.get("PINS")
    if pins:
        try:
            raw["pins"] = {**example["pins"], **json.loads(pins)}
        except (ValueError, TypeError):
            raise ConfigError("pins must be a JSON object, e.g. '{\"relay\": 4}'")
    if args.metrics_interval is not None:
        raw["metrics_interval_s"] = args.metrics_interval
    return raw


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "firmware" / "config.json")
    for key, _, prompt in FIELDS:
        parser.add_argument("--" + key.replace("_", "-"), dest=key, help=prompt)
    parser.add_argument("--pins", help="JSON object overriding pins of the example")
    parser.add_argument("--metrics-interval", type=float)
    parser.add_argument("--no-input", action="store_true", help="never prompt")
    args = parser.parse_args(argv)
    try:
        cfg = validate(_collect(args))
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(cfg, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
