"""Self-signed TLS certificates for the tests that serve wss:// and https:// (made with the
`openssl` command: `needs_openssl` skips a test where it is missing)."""

import shutil
import subprocess

import pytest

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl command"
)


def self_signed(folder, name: str = "cert") -> tuple:
    """(key, cert) paths in `folder`: a one-day certificate for localhost and 127.0.0.1."""
    key, cert = folder / (name + ".key"), folder / (name + ".pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return key, cert
