"""What an HTTP API handler returns or raises: `HttpAnswer`, `ApiError` and the JSON bodies.

Pure (no websockets): server/api.py turns an HttpAnswer into the adapter's response
(server/http.py). Error bodies are `{"code": ..., "message": ...}`, with the protocol's codes
(docs/protocol.md).
"""

import json
from dataclasses import dataclass

from server.vocabulary import NOT_FOUND, SERVER_ERROR

JSON = "application/json; charset=utf-8"
BAD_REQUEST = "BAD_REQUEST"  # HTTP only: a query the API cannot read


@dataclass(frozen=True)
class HttpAnswer:
    """What the HTTP adapter sends back: status, content type, body and extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class ApiError(Exception):
    """A request the API refuses: becomes a JSON answer with this status and code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, BAD_REQUEST, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, NOT_FOUND, message)


def json_answer(payload: object, status: int = 200) -> HttpAnswer:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return HttpAnswer(status, JSON, body, (("Cache-Control", "no-store"),))


def error_answer(error: ApiError) -> HttpAnswer:
    return json_answer({"code": error.code, "message": error.message}, error.status)


def server_error_answer() -> HttpAnswer:
    """A handler failed: 500 with a generic message; the traceback goes to the log only."""
    return json_answer({"code": SERVER_ERROR, "message": "internal error; see the server log"}, 500)
