"""The demo data `python -m server --demo` starts with: the station, user and card the seed
document's examples use, so the simulator and the seed's wscat commands work out of the box,
plus a second card of the same user with a real 4-byte NFC UID, the one the README taps on the
emulated RC522 of `make sim-charger` (the seed's virtual UID is not hex: no reader can read it)."""

from pathlib import Path

from server.keys import hash_station_key, new_station_key, station_key_matches, write_private_file

from .contract import Storage

DEMO_STATION_ID = 1
DEMO_STATION_NAME = "Estación 1"
DEMO_TARIFF = 7.0  # the seed's examples: 2.45 kWh -> 17.15
DEMO_USER_NAME = "Juan Pérez"
DEMO_CARD_UID = "VIRTUAL-1-A4F2E8"
DEMO_READER_CARD_UID = "04C0FFEE"  # `tap 04C0FFEE` in make sim-charger


async def seed_demo(storage: Storage) -> bool:
    """Insert the demo station, user and card into an EMPTY database; return True if it did.
    A database that already has stations, users or cards is left alone (idempotent)."""
    if not await storage.is_empty():
        return False
    await storage.add_station(DEMO_STATION_NAME, DEMO_TARIFF, station_id=DEMO_STATION_ID)
    user = await storage.add_user(DEMO_USER_NAME)
    await storage.add_card(DEMO_CARD_UID, user.id)
    await storage.add_card(DEMO_READER_CARD_UID, user.id)
    return True


DEMO_KEY_FILE = "station-1.key"


async def ensure_demo_key(storage: Storage, directory: Path) -> str | None:
    """The demo station's charger key, so `make sim` and `make sim-charger` work with auth on.

    Kept in plain text in `directory/station-1.key` (0600, next to the database) because the
    simulators run on this machine; the database stores only its hash. Issued when station 1
    has no key yet; None when its key was issued by `python -m server.admin` (not known here)."""
    if await storage.get_station(DEMO_STATION_ID) is None:
        return None
    path = Path(directory) / DEMO_KEY_FILE
    stored = await storage.station_key_hash(DEMO_STATION_ID)
    if path.is_file():
        key = path.read_text(encoding="ascii").strip()
        if station_key_matches(key, stored):
            return key
    if stored is not None:
        return None
    key = new_station_key()
    write_private_file(path, key + "\n")
    await storage.set_station_key_hash(DEMO_STATION_ID, hash_station_key(key))
    return key
