"""`make firmware-bundle` (tools/firmware_bundle.py) as a person runs it: a real subprocess packing
a real build; the server reads back the version it names; bad input is one line, status 2."""

import hashlib
import subprocess
import sys

from server.firmware import bundle_version
from tools.firmware_bundle import ROOT


def bundle_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tools.firmware_bundle", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_build_is_packed_with_its_version_and_sha256(tmp_path):
    build = tmp_path / "build"
    (build / "charger").mkdir(parents=True)
    (build / "charger" / "app.mpy").write_bytes(b"M\x06" + bytes(range(256)) * 4)
    (build / "charger" / "state.mpy").write_bytes(b"M\x06state")
    (build / "boot.py").write_text("# not in a bundle\n")
    done = bundle_cli("--build", build, "--version", "1.4.0-rc1")
    assert done.returncode == 0, done.stderr
    out = build / "bundle-1.4.0-rc1.bin"
    data = out.read_bytes()
    assert done.stdout.split() == [
        str(out),
        "version",
        "1.4.0-rc1",
        str(len(data)),
        "bytes",
        "sha256",
        hashlib.sha256(data).hexdigest(),
    ]
    assert bundle_version(data) == "1.4.0-rc1"
    assert (
        b"charger/app.mpy" in data
        and b"charger/state.mpy" in data
        and b"not in a bundle" not in data
    )


def test_bad_input_is_one_line_and_status_2(tmp_path):
    for args, words in (
        (["--build", tmp_path, "--version", "1.0"], "no charger/*.mpy"),
        (["--build", tmp_path, "--version", "../x"], "version '../x'"),
        (["--build", tmp_path, "--version", "x" * 33], "1-32 letters"),
    ):
        done = bundle_cli(*args)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("firmware_bundle: error: ") and words in done.stderr
        assert done.stderr.count("\n") == 1
