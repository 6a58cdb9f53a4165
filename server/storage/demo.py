"""The demo data `python -m server --demo` starts with: the station, user and card the seed
document's examples use, so the simulator and the seed's wscat commands work out of the box."""

from .store import Storage

DEMO_STATION_ID = 1
DEMO_STATION_NAME = "Estación 1"
DEMO_TARIFF = 7.0  # the seed's examples: 2.45 kWh -> 17.15
DEMO_USER_NAME = "Juan Pérez"
DEMO_CARD_UID = "VIRTUAL-1-A4F2E8"


async def seed_demo(storage: Storage) -> bool:
    """Insert the demo station, user and card into an EMPTY database; return True if it did.
    A database that already has stations, users or cards is left alone (idempotent)."""
    if not await storage.is_empty():
        return False
    await storage.add_station(DEMO_STATION_NAME, DEMO_TARIFF, station_id=DEMO_STATION_ID)
    user = await storage.add_user(DEMO_USER_NAME)
    await storage.add_card(DEMO_CARD_UID, user.id)
    return True
