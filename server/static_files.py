"""The dashboard's static files: one file directly under server/static/, with its content type
and the page's security headers; any other name (including `..`) is 404. Pure."""

import re
from pathlib import Path

from server.answers import HttpAnswer, not_found

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
}
PAGE_HEADERS = (
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    (
        "Content-Security-Policy",
        # ws:/wss: spelled out: older mobile Safari does not count the page's own WebSocket as 'self'
        "default-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
)
_STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*(\.[a-z0-9]+)+$")


def read_static(static_dir: Path, name: str) -> HttpAnswer:
    """A file directly under `static_dir`; anything else (including `..`) is 404."""
    suffix = Path(name).suffix
    if not _STATIC_NAME.match(name) or suffix not in CONTENT_TYPES:
        raise not_found(f"no such file: {name}")
    path = static_dir / name
    try:
        body = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise not_found(f"no such file: {name}") from None
    return HttpAnswer(200, CONTENT_TYPES[suffix], body, PAGE_HEADERS)
