"""`make config` (tools.firmware_config) and `make firmware` (tools.firmware_build)."""

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.mpy import FIRMWARE, MPY_CROSS, requires_micropython
from tools import firmware_build, firmware_config, firmware_resident, firmware_resident32, wasm32

ROOT = Path(__file__).resolve().parents[2]


def test_config_from_flags_is_complete_and_valid(tmp_path):
    out = tmp_path / "config.json"
    rc = firmware_config.main(
        [
            "--out",
            str(out),
            "--no-input",
            "--ssid",
            "garage",
            "--password",
            "passw0rd",
            "--server-url",
            "wss://evse.example/ws",
            "--station",
            "7",
            "--token",
            "t0k",
            "--pins",
            '{"relay": 4}',
        ]
    )
    assert rc == 0
    cfg = json.loads(out.read_text())
    assert cfg["wifi"] == {"ssid": "garage", "password": "passw0rd"}
    assert cfg["server_url"] == "wss://evse.example/ws" and cfg["station"] == 7
    assert cfg["pins"]["relay"] == 4 and cfg["pins"]["stop"] == 32
    assert cfg["metrics_interval_s"] == 3


def test_several_comma_separated_server_urls_become_the_chargers_server_urls(tmp_path, capsys):
    out = tmp_path / "config.json"
    rc = firmware_config.main(
        [
            "--out",
            str(out),
            "--no-input",
            "--ssid",
            "garage",
            "--password",
            "passw0rd",
            "--station",
            "7",
            "--token",
            "t0k",
            "--server-url",
            "ws://10.0.0.5:3000/ws, ws://10.0.0.6:3000/ws",
        ]
    )
    assert rc == 0
    cfg = json.loads(out.read_text())
    assert cfg["server_urls"] == ["ws://10.0.0.5:3000/ws", "ws://10.0.0.6:3000/ws"]
    assert "server_url" not in cfg  # one or the other: the firmware refuses both
    assert "ws://10.0.0.5:3000/ws, ws://10.0.0.6:3000/ws" in capsys.readouterr().out


COMPLETE = {
    "WIFI_SSID": "garage",
    "WIFI_PASSWORD": "correct horse",
    "SERVER_URL": "ws://10.0.0.5:3000/ws",
    "STATION": "3",
    "TOKEN": "k3y",
}


def test_config_from_environment_variables(tmp_path, monkeypatch):
    for name, value in COMPLETE.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "config.json"
    assert firmware_config.main(["--out", str(out), "--no-input"]) == 0
    cfg = json.loads(out.read_text())
    assert cfg["server_url"] == "ws://10.0.0.5:3000/ws" and cfg["station"] == 3
    assert cfg["wifi"] == {"ssid": "garage", "password": "correct horse"} and cfg["token"] == "k3y"
    assert oct(out.stat().st_mode & 0o777) == "0o600"  # it holds the WiFi password and the key


@pytest.mark.parametrize(
    "args,word",
    [
        (["--station", "zero"], "station"),
        (["--station", "0"], "station"),
        (["--server-url", "http://x/ws"], "server_url"),
        (["--pins", "{not json"], "pins"),
        (["--pins", '{"relay": 77}'], "pins.relay"),
        (["--metrics-interval", "0.2"], "metrics_interval_s"),
        # issue 11: what the ESP32 cannot do, and values the board cannot use
        (
            ["--pins", '{"relay": 6}'],
            "pins.relay = GPIO 6: GPIO 6-11 are wired to the ESP32's flash",
        ),
        (["--pins", '{"relay": 35}'], "pins.relay = GPIO 35: GPIO 34-39 are input-only"),
        (["--pins", '{"relay": 32}'], "pins.stop = GPIO 32: GPIO 32 is already pins.relay"),
        (["--pins", '{"led": 24}'], "the ESP32 has no GPIO 24"),
        (["--pins", '{"uart_id": 0}'], "pins.uart_id = 0: must be 1 or 2"),
        (["--server-url", "ws://"], "server_url"),
        (["--server-url", "ws://host:3000/ws?role=publisher"], "no query"),
        (["--server-url", "ws://a:3000/ws,http://b:3000/ws"], "server_url"),
        (["--server-url", "ws://a:3000/ws,"], "server_url"),
        (["--server-url", ",".join(["ws://a:3000/ws"] * 9)], "at most 8 URLs"),
        (["--ssid", ""], "wifi.ssid must be 1 to 32 bytes"),
        (["--ssid", "x" * 33], "wifi.ssid must be 1 to 32 bytes"),
        (["--password", "short"], "wifi.password must be empty"),
    ],
)
def test_bad_config_values_are_refused_with_a_message_and_nothing_written(
    tmp_path, capsys, args, word
):
    out = tmp_path / "config.json"
    given = [
        "--ssid",
        "garage",
        "--password",
        "correct horse",
        "--server-url",
        "ws://10.0.0.5:3000/ws",
        "--station",
        "3",
        "--token",
        "",
    ]
    assert firmware_config.main(["--out", str(out), "--no-input", *given, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error:") and word in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_strapping_pins_are_warned_about_and_the_readme_wiring_is_not(tmp_path, capsys):
    out = tmp_path / "config.json"
    given = [
        "--ssid",
        "garage",
        "--password",
        "",
        "--server-url",
        "ws://10.0.0.5:3000/ws",
        "--station",
        "3",
        "--token",
        "",
    ]
    assert firmware_config.main(["--out", str(out), "--no-input", *given]) == 0
    assert capsys.readouterr().err == ""  # LED on 2 and RC522 CS on 5: the usual, safe uses
    assert (
        firmware_config.main(["--out", str(out), "--no-input", *given, "--pins", '{"relay": 12}'])
        == 0
    )
    err = capsys.readouterr().err
    assert "config warning: pins.relay = GPIO 12: GPIO 12 is a strapping pin" in err
    assert json.loads(out.read_text())["pins"]["relay"] == 12


def make_config(tmp_path, env, stdin=subprocess.DEVNULL):
    """`make config` as typed, without a terminal; the file goes to tmp_path (CONFIG_OUT)."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in COMPLETE and k not in ("PINS", "MAKEFLAGS", "MAKELEVEL")
    }
    environ.update(env)
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "config", f"CONFIG_OUT={tmp_path / 'config.json'}"],
        cwd=ROOT,
        env=environ,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_config_without_a_terminal_refuses_to_write_example_values(tmp_path):
    done = make_config(tmp_path, {"SERVER_URL": "ws://10.0.0.5:3000/ws", "STATION": "2"})
    assert done.returncode != 0
    assert "config error: missing WIFI_SSID, WIFI_PASSWORD, TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "config.json").exists()
    assert (
        not (ROOT / "firmware" / "config.json").exists()
        or "my-network" not in (ROOT / "firmware" / "config.json").read_text()
    )


def test_make_config_with_every_value_writes_them(tmp_path):
    done = make_config(tmp_path, COMPLETE)
    assert done.returncode == 0, done.stderr
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert (cfg["wifi"]["ssid"], cfg["station"], cfg["token"]) == ("garage", 3, "k3y")
    assert "correct horse" not in done.stdout + done.stderr  # the password is never echoed


def test_make_config_on_a_terminal_asks_and_does_not_echo_the_password(tmp_path):
    """A real pseudo-terminal: what the person sees contains the prompts, not the password."""
    out = tmp_path / "config.json"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal, as in a shell
        os.chdir(ROOT)
        environ = {k: v for k, v in os.environ.items() if k not in COMPLETE and k != "PINS"}
        os.execve(
            sys.executable,
            [sys.executable, "-m", "tools.firmware_config", "--out", str(out)],
            environ,
        )
    seen = b""
    answers = [
        (b"SSID", b"garage\n"),
        (b"password", b"s3cret-passw0rd\n"),
        (b"server URL", b"ws://10.0.0.5:3000/ws\n"),
        (b"station id", b"\n"),
        (b"station key", b"k3y\n"),
    ]
    try:
        for prompt, answer in answers:
            while prompt not in seen.split(b"\n")[-1]:
                ready, _, _ = select.select([fd], [], [], 30)
                assert ready, seen
                seen += os.read(fd, 1024)
            os.write(fd, answer)
        while True:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, seen
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"wrote" in seen and b"garage" in seen  # typed text is echoed ...
    assert b"s3cret-passw0rd" not in seen  # ... the password is not
    cfg = json.loads(out.read_text())
    assert cfg["wifi"] == {"ssid": "garage", "password": "s3cret-passw0rd"} and cfg["station"] == 1


@pytest.mark.skipif(not MPY_CROSS.exists(), reason="mpy-cross not installed")
def test_firmware_build_compiles_every_module_and_reports_sizes(tmp_path, capsys):
    out = tmp_path / "build"
    assert firmware_build.build(out) == 0
    modules = {p.stem for p in (FIRMWARE / "charger").glob("*.py")}
    assert {p.stem for p in (out / "charger").glob("*.mpy")} == modules
    assert (out / "boot.py").exists() and (out / "main.py").exists()
    report = capsys.readouterr().out
    assert "charger/state.mpy" in report and report.splitlines()[-1].startswith("total")


@requires_micropython
def test_firmware_build_report_shows_each_modules_resident_heap_on_both_word_sizes(
    tmp_path, capsys
):
    assert wasm32.missing() is None, wasm32.missing()
    assert firmware_build.build(tmp_path / "build", resident=True) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert rows["file"] == ["source", "built", "64-bit", "32-bit"]
    for column in (2, 3):
        assert int(rows["charger/state.mpy"][column]) > 0
        assert int(rows["total"][column]) > int(rows["charger/state.mpy"][column])
    # a 32-bit pointer is half a 64-bit one, so the resident set is smaller there
    assert int(rows["total"][3]) < int(rows["total"][2])


GROWN = 40  # functions: ~100 B each, well above the resident set's layout noise (~110-140 B)


def _grow_messages(tmp_path, out):
    """Rebuild charger/messages.mpy in `out` with GROWN more small functions."""
    grown = tmp_path / "messages.py"
    grown.write_text(
        (FIRMWARE / "charger" / "messages.py").read_text()
        + "".join("\ndef extra_%d(x):\n    return x + %d\n" % (i, i) for i in range(GROWN))
    )
    subprocess.run(
        [
            str(MPY_CROSS),
            "-O3",
            "-s",
            "charger/messages.py",
            "-o",
            str(out / "charger" / "messages.mpy"),
            str(grown),
        ],
        check=True,
    )


@requires_micropython
def test_resident_measure_charges_a_module_for_the_functions_it_grows(tmp_path):
    out = tmp_path / "build"
    assert firmware_build.build(out, quiet=True) == 0
    before = firmware_resident.measure(out)
    _grow_messages(tmp_path, out)
    after = firmware_resident.measure(out)
    assert after["charger.messages"] - before["charger.messages"] >= GROWN * 100
    assert after[firmware_resident.RESIDENT] - before[firmware_resident.RESIDENT] >= GROWN * 100
    assert after["charger.state"] == before["charger.state"]  # the others do not move


def test_32_bit_measure_charges_a_module_for_the_functions_it_grows(tmp_path):
    assert wasm32.missing() is None, wasm32.missing()
    out = tmp_path / "build"
    assert firmware_build.build(out, quiet=True) == 0
    before = firmware_resident32.measure(out)
    _grow_messages(tmp_path, out)
    after = firmware_resident32.measure(out)
    # a small function on 32 bits: its object, bytecode, dict slot and name, ~50 B
    assert after["charger.messages"] - before["charger.messages"] >= GROWN * 40
    assert after[firmware_resident.RESIDENT] - before[firmware_resident.RESIDENT] >= GROWN * 40
    assert after["charger.state"] == before["charger.state"]  # the others do not move


_SIZES_SETUP = """
import gc
KEEP = [None] * 8
M = [0, 0]
def function():
    def g(x):
        return x
    return g
def class_with_a_method():
    class C:
        def m(self):
            return 1
    return C
MAKERS = [function, class_with_a_method, lambda: [None] * 10, lambda: {i: i for i in range(8)},
          lambda: bytes(1000)]
NAMES = ["function", "class", "list10", "dict8", "bytes1000"]
gc.collect()
"""


def _size_phases():
    """Each object's live bytes: collect, read, make and keep it, collect, read, print. As
    phases, since the WebAssembly port collects only between calls (tools/wasm/run.mjs)."""
    phases = [_SIZES_SETUP]
    for i in range(5):
        phases += [
            "M[0] = gc.mem_alloc()\n",
            "KEEP[%d] = MAKERS[%d]()\ngc.collect()\n" % (i, i),
            "M[1] = gc.mem_alloc()\n",
            "print(NAMES[%d], M[1] - M[0])\ngc.collect()\n" % i,
        ]
    return phases


@requires_micropython
def test_32_bit_port_halves_objects_but_not_bytes():
    """Why the 32-bit column is ~0.74 of the 64-bit one and not half: objects of pointers
    halve exactly (GC blocks of 16 B instead of 32 B), the bytes of bytecode, names and
    strings do not."""
    assert wasm32.missing() is None, wasm32.missing()
    ((out32, status),) = wasm32.run({}, [{"code": _size_phases()}])
    assert status == 0, out32
    out64 = subprocess.run(
        [str(firmware_resident.MICROPYTHON), "-c", "".join(_size_phases())],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    size32 = {k: int(v) for k, v in (line.split() for line in out32.splitlines())}
    size64 = {k: int(v) for k, v in (line.split() for line in out64.splitlines())}
    for name in ("function", "class", "list10", "dict8"):
        assert size32[name] * 2 == size64[name], (name, size32, size64)
    assert size32["bytes1000"] >= 1000 and size64["bytes1000"] - size32["bytes1000"] <= 64


def test_32_bit_port_collects_garbage_only_between_calls():
    """The reason the 32-bit probe runs in phases: inside one call gc.collect() frees
    nothing (the port cannot scan a wasm stack); a phase boundary does."""
    assert wasm32.missing() is None, wasm32.missing()
    setup = "import gc\nM = [0, 0]\ngc.collect()\n"
    churn = "for i in range(10):\n    b = bytes(2400)\nb = None\ngc.collect()\n"
    (one_call, s1), (phased, s2) = wasm32.run(
        {},
        [
            {"code": [setup, "M[0] = gc.mem_alloc()\n" + churn + "print(gc.mem_alloc() - M[0])"]},
            {"code": [setup, "M[0] = gc.mem_alloc()\n", churn, "print(gc.mem_alloc() - M[0])"]},
        ],
    )
    assert s1 == 0 and s2 == 0
    assert int(one_call) >= 10 * 2400  # all ten garbage buffers still counted
    assert int(phased) < 2400  # none of them


def test_without_the_32_bit_port_the_tools_say_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(wasm32, "MODULE", tmp_path / "node_modules" / "missing.mjs")
    assert "npm ci" in wasm32.missing() and "tools/wasm" in wasm32.missing()
    with pytest.raises(RuntimeError, match="npm ci"):
        wasm32.run({}, [{"code": "print(1)"}])
    assert firmware_resident32.main(["--build", str(tmp_path)]) == 2
    assert "npm ci" in capsys.readouterr().err
    # the Node runner alone, away from its node_modules, says the same
    runner = tmp_path / "run.mjs"
    runner.write_text(wasm32.RUNNER.read_text())
    proc = subprocess.run(
        ["node", str(runner)], input='{"runs": []}', capture_output=True, text=True
    )
    assert proc.returncode == 3 and "npm ci" in proc.stderr, proc.stderr


def test_32_bit_runner_reports_a_python_error_without_a_node_traceback():
    assert wasm32.missing() is None, wasm32.missing()
    (ok, s0), (bad, s1), (after, s2) = wasm32.run(
        {"/d/m.py": b"X = 7\n"},
        [
            {"code": "import m\nprint(m.X)", "path": ["/d"]},
            {"code": "raise ValueError('boom')"},
            {"code": "import sys\nprint('m' in sys.modules)"},  # a fresh interpreter
        ],
    )
    assert (ok, s0) == ("7", 0)
    assert s1 == 1 and bad.endswith("ValueError: boom") and "node:" not in bad
    assert (after, s2) == ("False", 0)


_POOL = """
import micropython
class K:
    pass
micropython.qstr_info()
for i in range(700):
    setattr(K, "zq%d" % i, 0)  # interns a new name
    micropython.qstr_info()
"""


def _entry_bytes(output):
    """Bytes per qstr pool entry, from two successive pools: their sizes differ by their
    capacities' difference times the entry (GC-block rounding spread over 160 entries). A
    pool's capacity is the count of qstrs interned until the next one starts."""
    import re

    points = [
        (int(q), int(total) - int(data))
        for q, data, total in re.findall(
            r"n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)", output
        )
    ]
    jumps = [(q1, b1 - b0) for (_, b0), (q1, b1) in zip(points, points[1:]) if b1 != b0]
    assert len(jumps) >= 3, output[-2000:]
    (q0, j0), (q1, j1), (q2, _) = jumps[-3:]
    return (j1 - j0) / ((q2 - q1) - (q1 - q0))


@requires_micropython
def test_the_qstr_entry_sizes_of_the_smoothing_are_each_ports_own():
    assert wasm32.missing() is None, wasm32.missing()
    out64 = subprocess.run(
        [str(firmware_resident.MICROPYTHON), "-c", _POOL],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ((out32, status),) = wasm32.run({}, [{"code": _POOL}])
    assert status == 0, out32
    assert round(_entry_bytes(out64), 1) == firmware_resident.QSTR_ENTRY_BYTES == 11
    assert round(_entry_bytes(out32), 1) == firmware_resident32.QSTR_ENTRY_BYTES == 7


def test_a_build_dir_that_is_no_built_firmware_is_refused_in_one_line(tmp_path, capsys):
    # before: a MicroPython traceback per module ("no module named 'charger'")
    assert firmware_resident.main(["--build", str(tmp_path)]) == 2
    assert "not a built firmware tree" in capsys.readouterr().err
