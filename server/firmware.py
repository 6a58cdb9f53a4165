"""Over-the-air firmware updates: the bundles, their download, the admin's order, the outcome.

- `Bundles(directory)`: the update bundles in FIRMWARE_DIR (`make firmware-bundle`; the format
  is tools/firmware_bundle.py's, docs/architecture.md), by the version their header names,
  with size and SHA-256 (computed once per file change).
- `GET /firmware/<version>.bin?estacionId=N&token=K`: the bundle, for a charger only,
  authenticated with its station key exactly as its WebSocket (401 UNAUTHORIZED otherwise;
  404 FIRMWARE_NOT_FOUND).
- `{"type":"admin_update_firmware","station_id":N,"version":V}` (admin role only, like every
  `admin_*`): sends the station's charger `{"type":"update","version":V,"url":...,
  "sha256":H,"size":N}`; refused NOT_FOUND (station or version), CHARGER_OFFLINE (no seed
  charger connected), INVALID_MESSAGE. `{"type":"admin_list_firmware"}` lists the versions and
  each station's firmware state.
- From the charger: `status` carries `fw` (its running version); `update_result` carries
  `version`, `result` (installing, updated, refused, rolled_back, failed) and maybe a `code`.
  Each station's state (`fw`, the last order and its outcome) is kept in memory and pushed
  to dashboards as `{"type":"firmware","charger_id":N,"fw":...,"update":{...}}`. A result only
  moves its order forward (requested -> installing -> one final result: updated, refused,
  rolled_back or failed); a late or repeated one is ignored. An order
  still `requested` is sent again when the charger reconnects (a new connection) reporting
  another `fw` (it lost the order with a reboot). A result for another version than the station's
  last order (or with no order since this server started) is logged and ignored: it must not
  replace the order (whose resend would be lost); its `fw` is still noted.

In a fleet (server/cluster/) an order for a charger connected to another process goes to that
process (`fleet.forward`), which sends it and answers; every process needs the same bundles in
its FIRMWARE_DIR (the download may reach any of them through the balancer). The stations'
states are kept by the process serving each charger; the others learn the orders they passed
on and see the `firmware` pushes on their dashboards, but `admin_list_firmware` on them shows
only what they learnt.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from server import protocol as p
from server.codecs import SEED
from server.dashboard_messages import (
    ADMIN_HANDLERS,
    Refused,
    answered,
    field_id,
    handle_admin,
    owner_call,
)
from server.http import bytes_response, json_response
from server.hub import send
from server.vocabulary import CHARGER_OFFLINE, NOT_FOUND

log = logging.getLogger(__name__)

PREFIX = "/firmware/"
MAGIC = b"EVFW"
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
RESULTS = ("installing", "updated", "refused", "rolled_back", "failed")
# how far an order got: a result only moves it forward (a late `installing` replayed after the
# new version's `updated` is ignored), and a final one (rank 2) is the order's last word
RANK = {"requested": 0, "installing": 1, "updated": 2, "refused": 2, "rolled_back": 2, "failed": 2}
MAX_CODE = 40
REPEATED = "the same result again"  # ignored without a warning: a charger may repeat itself


def why_ignored(order: dict | None, version: str, result: str, code: str | None) -> str | None:
    """Why an `update_result` leaves the station's update order as it is; None: it applies."""
    if order is None:
        return "no update was ordered"
    if order["version"] != version:
        return f"the order is for {order['version']} ({order['result']})"
    if RANK[result] < RANK[order["result"]] or (
        RANK[order["result"]] == 2 and result != order["result"]
    ):
        return f"the update is {order['result']} already"
    if result == order["result"] and code == order["code"]:
        return REPEATED
    return None


@dataclass(frozen=True)
class Bundle:
    version: str
    path: Path
    size: int
    sha256: str

    def json(self) -> dict:
        return {"version": self.version, "size": self.size, "sha256": self.sha256}


def bundle_version(head: bytes) -> str | None:
    """The version a bundle's first bytes name, None when it is no bundle."""
    if len(head) < 6 or head[:4] != MAGIC:
        return None
    version = head[5 : 5 + head[4]].decode("ascii", "replace")
    return version if len(version) == head[4] and VERSION_RE.match(version) else None


class Bundles:
    def __init__(self, directory: Path):
        self.directory = directory
        self._known: dict[Path, tuple[tuple, Bundle | None]] = {}

    def scan(self) -> dict[str, Bundle]:
        """{version: Bundle} of the directory's *.bin files now (a file that is not a bundle
        is skipped with a warning once)."""
        found: dict[str, Bundle] = {}
        try:
            paths = sorted(self.directory.glob("*.bin"))
        except OSError:
            return found
        for path in paths:
            try:
                stat = path.stat()
                key = (stat.st_mtime_ns, stat.st_size)
                cached = self._known.get(path)
                if cached is None or cached[0] != key:
                    data = path.read_bytes()
                    version = bundle_version(data[:40])
                    if version is None:
                        log.warning("firmware: %s is not an update bundle; ignored", path)
                    bundle = (
                        Bundle(version, path, len(data), hashlib.sha256(data).hexdigest())
                        if version
                        else None
                    )
                    self._known[path] = cached = (key, bundle)
            except OSError as problem:
                log.warning("firmware: cannot read %s: %s", path, problem)
                continue
            if cached[1] is not None:
                found[cached[1].version] = cached[1]
        return found


class Firmware:
    """One per server: the bundles and each station's firmware state."""

    def __init__(self, app):
        self.app = app
        self.bundles = Bundles(app.config.firmware_path)
        self.stations: dict[int, dict] = {}  # station -> {"fw": str|None, "update": dict|None}
        self.sent_on: dict[int, object] = {}  # station -> the connection its last order went on

    def state(self, station_id: int) -> dict:
        return self.stations.setdefault(station_id, {"fw": None, "update": None})

    def push(self, station_id: int) -> None:
        self.app.hub.broadcast(
            station_id, {"type": "firmware", "charger_id": station_id, **self.state(station_id)}
        )

    # --- HTTP: the charger's download ---------------------------------------------------------
    async def download(self, request):
        query = parse_qs(request.query)
        estacion = (query.get("estacionId") or [None])[0]
        token = (query.get("token") or [None])[0]
        principal = await self.app.auth.authenticate(token, p.ROLE_PUBLISHER, estacion)
        if estacion is None or principal is None:
            return json_response(
                401, {"code": "UNAUTHORIZED", "message": "a station key is required"}
            )
        name = request.path[len(PREFIX) :]
        bundle = self.bundles.scan().get(name[:-4]) if name.endswith(".bin") else None
        if bundle is None:
            return json_response(
                404, {"code": "FIRMWARE_NOT_FOUND", "message": f"no firmware {name[:40]!r}"}
            )
        try:
            data = bundle.path.read_bytes()
        except OSError:
            return json_response(
                404, {"code": "FIRMWARE_NOT_FOUND", "message": f"no firmware {name[:40]!r}"}
            )
        log.info("station %s downloads firmware %s", estacion, bundle.version)
        return bytes_response(
            200, data, "application/octet-stream", [("Cache-Control", "no-store")]
        )

    # --- the charger's messages ---------------------------------------------------------------
    async def from_charger(self, station_id: int, data: dict, connection) -> bool:
        """Note `fw` in a status and handle `update_result`; True when the frame is this
        module's alone (the core does not see it)."""
        kind = data.get("type")
        if kind == "status":
            fw = data.get("fw")
            if isinstance(fw, str) and VERSION_RE.match(fw):
                state = self.state(station_id)
                changed = state["fw"] != fw
                state["fw"] = fw
                order = state["update"]
                if (
                    order
                    and order["result"] == "requested"
                    and fw != order["version"]
                    and self.sent_on.get(station_id) is not connection
                ):  # a new connection
                    await self._send_order(station_id, order["version"], connection)
                if changed:
                    self.push(station_id)
            return False
        if kind != "update_result":
            return False
        version, result, code = data.get("version"), data.get("result"), data.get("code")
        if not isinstance(version, str) or not VERSION_RE.match(version) or result not in RESULTS:
            raise p.ProtocolError(
                "update_result: needs a version and a result among " + ", ".join(RESULTS)
            )
        if code is not None and (not isinstance(code, str) or not 0 < len(code) <= MAX_CODE):
            raise p.ProtocolError("update_result: code must be a short text")
        state = self.state(station_id)
        fw = data.get("fw")
        changed = isinstance(fw, str) and VERSION_RE.match(fw) is not None and state["fw"] != fw
        if changed:
            state["fw"] = fw
        ignored = why_ignored(state["update"], version, result, code)
        if ignored is None:
            state["update"] = {"version": version, "result": result, "code": code}
            (log.info if result in ("installing", "updated") else log.warning)(
                "station %s: firmware %s %s%s",
                station_id,
                version,
                result,
                f" ({code})" if code else "",
            )
        elif ignored != REPEATED:
            log.warning(
                "station %s: firmware result %s for %s ignored: %s",
                station_id,
                result,
                version,
                ignored,
            )
        if ignored is None or changed:
            self.push(station_id)
        return True

    async def _send_order(self, station_id: int, version: str, connection) -> bool:
        bundle = self.bundles.scan().get(version)
        if bundle is None:
            return False
        order = {
            "type": "update",
            "version": version,
            "url": f"{PREFIX}{version}.bin",
            "sha256": bundle.sha256,
            "size": bundle.size,
        }
        self.sent_on[station_id] = connection
        return await send(connection, order)

    # --- admin messages -----------------------------------------------------------------------
    async def order(self, app, data: dict) -> tuple[dict, list]:
        station_id = field_id(data, "station_id")
        version = data.get("version")
        if not isinstance(version, str) or not VERSION_RE.match(version):
            raise Refused(
                "admin_update_firmware: version must be 1-32 letters, digits, '.', '_' or '-'"
            )
        if await app.storage.get_station(station_id) is None:
            raise Refused(f"station {station_id} does not exist", NOT_FOUND)
        if version not in self.bundles.scan():  # every process of a fleet has the same bundles
            raise Refused(f"no firmware {version} in {self.bundles.directory}", NOT_FOUND)
        forwarded = await app.fleet.forward(
            station_id,
            {"type": "admin_update_firmware", "station_id": station_id, "version": version},
        )
        if forwarded is not None:  # the charger is on another process of the fleet: it answered
            result = answered(forwarded)
            if isinstance(result.get("firmware"), dict):
                self.stations[station_id] = result["firmware"]
            return result, []
        return await self.order_here(app, data, station_id), []

    async def order_here(self, app, data: dict, station_id: int) -> dict:
        """Send the order to the station's charger connected to this process."""
        version = data.get("version")
        if not isinstance(version, str) or version not in self.bundles.scan():
            raise Refused(f"no firmware {version} in {self.bundles.directory}", NOT_FOUND)
        connection = app.hub.publishers.get(station_id)
        if connection is None or app.hub.encoders.get(connection) is not SEED:
            raise Refused(
                f"station {station_id} has no charger connected that takes updates", CHARGER_OFFLINE
            )
        if not await self._send_order(station_id, version, connection):
            raise Refused(f"station {station_id}: the charger went away", CHARGER_OFFLINE)
        state = self.state(station_id)
        state["update"] = {"version": version, "result": "requested", "code": None}
        log.info("station %s: firmware %s requested", station_id, version)
        self.push(station_id)
        return {"station_id": station_id, "firmware": state}

    async def listing(self, app, data: dict) -> tuple[dict, list]:
        stations = {str(s.id): self.state(s.id) for s in await app.storage.list_stations()}
        versions = [b.json() for b in sorted(self.bundles.scan().values(), key=lambda b: b.version)]
        return {"versions": versions, "stations": stations}, []


async def _order(app, data: dict) -> tuple[dict, list]:
    return await app.firmware.order(app, data)


async def _listing(app, data: dict) -> tuple[dict, list]:
    return await app.firmware.listing(app, data)


ADMIN_HANDLERS["admin_update_firmware"] = _order  # admin role only (handle_admin checks)
ADMIN_HANDLERS["admin_list_firmware"] = _listing


async def _order_here(app, data: dict, station_id: int) -> dict:
    return await app.firmware.order_here(app, data, station_id)


def register(app) -> Firmware:
    """The download route, the admin messages; `app.firmware` for the charger's frames; the
    order as another process of a fleet forwards it (`app.owner_calls`)."""
    firmware = Firmware(app)
    app.http_routes.add_prefix(PREFIX, firmware.download)
    for kind in ("admin_update_firmware", "admin_list_firmware"):
        app.client_handlers[kind] = handle_admin
    app.owner_calls["admin_update_firmware"] = owner_call(_order_here)
    return firmware
