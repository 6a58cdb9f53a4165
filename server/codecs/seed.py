"""The seed protocol's codec: the seed's JSON frames <-> the neutral vocabulary.

Inbound, a frame is parsed and validated by server/protocol.py into a neutral event (an
`nfc_scan` is a CardRead). Outbound, each neutral command is the seed message it always was,
byte for byte: Welcome -> `connected`, StartCharging -> `start`, StopCharging -> `stop`,
Refusal -> `error`, RequestStatus -> `sync_request`, Acknowledge -> `ack`, AuthList ->
`auth_list`.
"""

from __future__ import annotations

from server import protocol as p
from server.vocabulary import (
    Acknowledge,
    AuthList,
    Refusal,
    RequestStatus,
    StartCharging,
    StopCharging,
    Welcome,
)

_MESSAGES = {
    Welcome: lambda c: p.connected(str(c.station_id)),
    StartCharging: lambda c: p.start(c.session_id, c.user_name, c.local_id, c.end),
    StopCharging: lambda c: p.stop(c.session_id),
    Refusal: lambda c: (
        p.error(c.message, c.code)
        if c.local_id is None
        else p.error(c.message, c.code, local_id=c.local_id)
    ),
    AuthList: lambda c: p.auth_list(c.version, c.offline, c.cards, c.sig),
    RequestStatus: lambda c: p.sync_request(),
    Acknowledge: lambda c: p.ack(c.n),
}


class SeedCodec:
    name = "seed"

    @staticmethod
    def decode(frame: str | bytes) -> dict:
        return p.decode_frame(frame)

    @staticmethod
    def kind(data: dict) -> str:
        return data["type"]

    @staticmethod
    def event(data: dict):
        return p.parse_publisher_message(data)

    @staticmethod
    def message(command) -> dict:
        return _MESSAGES[type(command)](command)

    def encode(self, command) -> str:
        return p.encode(self.message(command))
