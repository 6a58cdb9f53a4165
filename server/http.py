"""Plain HTTP GET on the WebSocket port, through websockets' `process_request` hook.

`HttpRoutes` is the routing table: exact paths (`add("/healthz", handler)`) and path prefixes
(`add_prefix("/static/", handler)`). A handler is `handler(request: HttpRequest)` (plain or
async) returning a websockets `Response`, built with `json_response` / `text_response` /
`bytes_response`. `/ws` goes on to the WebSocket handshake; any other unknown path is 404.
A handler that raises answers 500 with a generic body (the traceback goes to the log only).
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from server.vocabulary import NOT_FOUND, SERVER_ERROR

log = logging.getLogger(__name__)

WEBSOCKET_PATH = "/ws"


@dataclass(frozen=True)
class HttpRequest:
    path: str  # without the query string
    query: str  # raw query string, without '?'
    headers: Headers


def bytes_response(status: int, body: bytes, content_type: str, extra_headers=()) -> Response:
    status = HTTPStatus(status)
    headers = Headers(
        [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra_headers]
    )
    return Response(status.value, status.phrase, headers, body)


def text_response(
    status: int, text: str, content_type: str = "text/plain; charset=utf-8"
) -> Response:
    return bytes_response(status, text.encode(), content_type)


def json_response(status: int, payload) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return bytes_response(status, body, "application/json", [("Cache-Control", "no-store")])


class HttpRoutes:
    def __init__(self):
        self.exact: dict[str, object] = {}
        self.prefixes: list[tuple[str, object]] = []

    def add(self, path: str, handler) -> None:
        self.exact[path] = handler

    def add_prefix(self, prefix: str, handler) -> None:
        self.prefixes.append((prefix, handler))
        self.prefixes.sort(key=lambda item: len(item[0]), reverse=True)  # longest first

    def find(self, path: str):
        if path in self.exact:
            return self.exact[path]
        for prefix, handler in self.prefixes:
            if path.startswith(prefix):
                return handler
        return None

    async def process_request(self, connection, request: Request) -> Response | None:
        """websockets hook: None lets the WebSocket handshake go on (only for /ws)."""
        url = urlsplit(request.path)
        if url.path == WEBSOCKET_PATH:
            return None
        handler = self.find(url.path)
        if handler is None:
            return json_response(404, {"code": NOT_FOUND, "message": f"no such path: {url.path}"})
        try:
            response = handler(HttpRequest(url.path, url.query, request.headers))
            if inspect.isawaitable(response):
                response = await response
            return response
        except Exception:
            log.exception("HTTP handler for %s failed", url.path)
            return json_response(500, {"code": SERVER_ERROR, "message": "internal error"})
