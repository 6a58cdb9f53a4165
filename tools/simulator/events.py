"""Event lines: what the simulator prints, one line per protocol event, and what scripts wait for.

Line format (greppable): `[st<N>] <event> key=value ...`
  `[st1] <- start session_id=5 user_name="Juan Pérez"`   a frame from the server
  `[st1] -> metrics session_id=5 v=230.1 a=32.000 ...`   a frame sent to the server
  `[st1] started session_id=5 relay=on`                  a charger event
Strings with spaces are JSON-quoted; `null` is None.

Names a script can wait for (`wait-for NAME`): the charger events (`online`, `offline`,
`retry`, `dropped`, `waiting`, `started`, `stopped`, `idle`, `fault`, `refused`, `ignored`,
`queued`, `replayed`, `delivered` (an ack released outbox entries), `rebooted`, `invalid`,
`lost`, `led`), `<-TYPE` / `->TYPE` for frames, and a bare server frame type (`connected`,
`start`, `stop`, `error`, `sync_request`, `ack`) as short for `<-TYPE`.
"""

import asyncio
import json


def format_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if value and not any(c.isspace() or c in "\"'=" for c in value):
            return value
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def format_fields(fields: dict) -> str:
    return " ".join(f"{key}={format_value(value)}" for key, value in fields.items())


def event_names(event: str, fields: dict) -> tuple:
    """The names under which an event can be waited for."""
    if event in ("<-", "->"):
        kind = str(fields.get("type"))
        if event == "<-":
            return (kind, "<-" + kind)
        return ("->" + kind,)
    return (event,)


class EventLog:
    """One station's events: printed as they happen, kept so scripts can wait for them."""

    def __init__(self, station_id: int, write):
        self.station_id = station_id
        self._write = write
        self._names = []
        self._changed = asyncio.Event()

    def __len__(self):
        return len(self._names)

    def emit(self, event: str, fields: dict) -> None:
        if event in ("<-", "->"):
            body = {k: v for k, v in fields.items() if k != "type"}
            text = f"{event} {fields.get('type')} {format_fields(body)}"
        else:
            text = f"{event} {format_fields(fields)}"
        self._write(f"[st{self.station_id}] {text.rstrip()}")
        self._names.append(event_names(event, fields))
        self._changed.set()

    def find(self, name: str, start: int):
        """Index of the first event named `name` at or after `start`, or None."""
        for index in range(start, len(self._names)):
            if name in self._names[index]:
                return index
        return None

    async def wait_for(self, name: str, start: int, timeout: float) -> int:
        """Wait for `name` at or after `start`; return the index after it.
        Raises TimeoutError."""
        async with asyncio.timeout(timeout):
            while True:
                index = self.find(name, start)
                if index is not None:
                    return index + 1
                self._changed.clear()
                await self._changed.wait()
