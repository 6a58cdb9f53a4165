"""Pack the built firmware (`make firmware`: firmware-build/charger/*.mpy) into one update bundle.

    python -m tools.firmware_bundle [--build DIR] [--version V] [--out FILE]

writes `firmware-build/bundle-<version>.bin` and prints its version, size and SHA-256. The
server serves every bundle in its FIRMWARE_DIR to the chargers (server/firmware.py); copy the
file there. The format (docs/architecture.md, "Firmware bundle"), all integers big-endian:

    b"EVFW" | 1 byte: version length | version (ASCII) | 2 bytes: file count
    then per file: 1 byte: path length | path (ASCII, e.g. "charger/app.mpy") | 4 bytes: size | bytes

Only the `charger` package travels: boot.py, main.py and otaboot.py (the loader that picks the
version to run and rolls back) and config.json stay as `make flash` put them. `read_header()`
is the reader the server uses (the charger has its own, firmware/charger/otaput.py).
The SHA-256 is of the whole file; the server computes it when it scans the directory and
sends it with the update order.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAGIC = b"EVFW"
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
MAX_FILES = 64
MAX_FILE = 256 * 1024


class BundleError(ValueError):
    """A bundle that cannot be built or read; one line for the operator."""


def default_version() -> str:
    """`git describe --always --dirty` of the tree, or "dev"."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        text = out.stdout.strip().replace("/", "-")
        return text if out.returncode == 0 and VERSION_RE.match(text) else "dev"
    except (OSError, subprocess.SubprocessError):
        return "dev"


def pack(build: Path, version: str, out: Path) -> tuple[str, int]:
    """Write the bundle of `build`/charger/*.mpy; returns (sha256 hex, size)."""
    if not VERSION_RE.match(version):
        raise BundleError(f"version {version!r}: 1-32 letters, digits, '.', '_' or '-'")
    files = sorted((build / "charger").glob("*.mpy"))
    if not files:
        raise BundleError(f"no charger/*.mpy in {build}: run make firmware first")
    if len(files) > MAX_FILES:
        raise BundleError(f"{len(files)} files: at most {MAX_FILES}")
    body = bytearray(
        MAGIC + bytes([len(version)]) + version.encode() + struct.pack(">H", len(files))
    )
    for path in files:
        name = f"charger/{path.name}".encode()
        data = path.read_bytes()
        if len(data) > MAX_FILE:
            raise BundleError(f"{path.name}: {len(data)} bytes, at most {MAX_FILE}")
        body += bytes([len(name)]) + name + struct.pack(">I", len(data)) + data
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(body)
    tmp.replace(out)
    return hashlib.sha256(body).hexdigest(), len(body)


def read_header(path: Path) -> str:
    """The version a bundle file names; BundleError when it is not a bundle."""
    with open(path, "rb") as f:
        head = f.read(5 + 32)
    if len(head) < 6 or head[:4] != MAGIC:
        raise BundleError(f"{path.name}: not a firmware bundle (no EVFW header)")
    version = head[5 : 5 + head[4]].decode("ascii", "replace")
    if len(version) != head[4] or not VERSION_RE.match(version):
        raise BundleError(f"{path.name}: bad version in the header")
    return version


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="firmware_bundle", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--build",
        type=Path,
        default=ROOT / "firmware-build",
        help="the built firmware tree (default firmware-build)",
    )
    parser.add_argument("--version", help="the bundle's version (default: git describe)")
    parser.add_argument("--out", type=Path, help="default BUILD/bundle-VERSION.bin")
    args = parser.parse_args(argv)
    version = args.version or default_version()
    out = args.out or args.build / f"bundle-{version}.bin"
    try:
        digest, size = pack(args.build, version, out)
    except (BundleError, OSError) as problem:
        print(f"firmware_bundle: error: {problem}", file=sys.stderr)
        return 2
    print(f"{out}  version {version}  {size} bytes  sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
