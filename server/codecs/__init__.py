"""Charger protocols: one codec per protocol, between its frames and the neutral vocabulary.

The session core (server/core.py) speaks only server/vocabulary.py; a codec translates both
ways for the chargers of one protocol. The WebSocket adapter (server/ws.py) picks a charger's
codec when it admits the connection, and the hub (server/hub.py) keeps it as that connection's
encoder, so every command the core or the adapter addresses to a charger goes out in the
charger's own protocol. Dashboards have their own encoder (server/codecs/dashboard.py).

A codec has:
    name                       the protocol's name
    decode(frame) -> data      a frame into its decoded form; ProtocolError when unreadable
    kind(data) -> str          the message's type, as counted in /metrics
    event(data) -> event       the neutral event it means; ProtocolError when not allowed
    message(command) -> obj    a neutral command as this protocol's message (before encoding)
    encode(command) -> str     the same as the text frame sent

Protocols:
    seed     server/codecs/seed.py: the seed's JSON (docs/protocol.md), /ws?role=publisher
    ocpp16   server/codecs/ocpp16.py: OCPP 1.6J at /ocpp/{chargePointId} (server/ocpp.py);
             request/response, so its `encode` hands the command to the connection's link
"""

from server.codecs.ocpp16 import OCPP16
from server.codecs.seed import SeedCodec

SEED = SeedCodec()

CODECS = {SEED.name: SEED, OCPP16.name: OCPP16}
