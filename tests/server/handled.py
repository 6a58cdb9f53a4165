"""Waiting on the server without timing: `handled(ws)` returns once every frame sent before it
on that connection was handled, with what the server sent meanwhile."""

import asyncio
import json

from tests.live_server import RECEIVE_TIMEOUT, send_json


async def handled(websocket) -> list[dict]:
    """Everything the server sent this connection (acks left out) until every frame it sent
    before now was handled: a frame the server always refuses marks the end."""
    await send_json(websocket, {"type": "sync_check"})
    seen = []
    async with asyncio.timeout(RECEIVE_TIMEOUT):
        while True:
            message = json.loads(await websocket.recv())
            if message.get("type") == "ack":
                continue
            if message.get("code") == "INVALID_MESSAGE" and "sync_check" in message.get(
                "message", ""
            ):
                return seen
            seen.append(message)


def of_type(messages, kind):
    return [m for m in messages if m.get("type") == kind]


async def drain(dashboard) -> list[dict]:
    """What a dashboard was pushed so far. Call it after `handled()`: the pushes of a charger's
    frame are queued before its handling ends, so they arrive before the answer to a frame this
    dashboard sends now."""
    return await handled(dashboard)
