"""The real firmware on the MicroPython unix port as an asyncio subprocess (tests, bench).

`SimCharger(tmp_path, server_url, ...)` writes a config, starts `tools/sim/run_charger.py`
(emulated RC522, PZEM-004T, relay, buttons, LED) and talks to its control channel on stdin.
Every stdout line is kept (`lines`); `wait_line()` waits for a matching one with a timeout,
`command()` sends a control command and returns its `SIM ...` answer, `status()` the parsed
status JSON, `wait_status()` polls until a condition holds. `stop()` kills the process.
"""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MICROPYTHON = Path(sys.executable).parent / "micropython"
if not MICROPYTHON.exists():
    MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
# shims first (tools/sim/machine.py replaces the built-in), then the firmware, then asyncio
MICROPYPATH = "%s:%s:.frozen" % (ROOT / "tools" / "sim", ROOT / "firmware")
TIMEOUT = 30.0


def mpy_env(extra=None, path=MICROPYPATH):
    """The environment for a MicroPython process running the firmware with the shims."""
    env = dict(os.environ)
    env["MICROPYPATH"] = path
    if extra:
        env.update(extra)
    return env


class SimCharger:
    # power x time_scale is the meter's apparent power (20 kW by default): keep it within the
    # station's max power (22 kW by default) or the server flags the readings and bills the
    # bounded trapezoid instead of the register
    def __init__(self, tmp_path, server_url, *, station=1, power=2000.0, time_scale=10.0,
                 meter_state=None, heapsize=None, module_dirs=None, **config):
        self.config_path = tmp_path / "charger-config.json"
        cfg = {"server_url": server_url, "station": station, "token": "",
               "metrics_interval_s": 1, "meter_interval_s": 0.25, "backoff_max_s": 1,
               "watchdog_s": 0, "wifi": {"ssid": "sim-ap", "password": "sim"}}
        cfg.update(config)
        self.config_path.write_text(json.dumps(cfg))
        self.meter_state = meter_state or tmp_path / "meter-state.txt"
        self.power = power
        self.time_scale = time_scale
        self.extra_args = []
        self.heapsize = heapsize
        # where the shims and the firmware are imported from (compiled .mpy dirs for the bench)
        self.module_dirs = module_dirs
        self.proc = None
        self.lines = []
        self._new_line = asyncio.Event()
        self._reader = None

    async def start(self):
        self.lines = []
        heap = ["-X", "heapsize=%s" % self.heapsize] if self.heapsize else []
        self.proc = await asyncio.create_subprocess_exec(
            str(MICROPYTHON), *heap, "tools/sim/run_charger.py", str(self.config_path),
            "--power", str(self.power), "--time-scale", str(self.time_scale),
            "--meter-state", str(self.meter_state), *self.extra_args,
            cwd=str(ROOT), env=mpy_env(path=self._path()), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())
        await self.wait_line(lambda l: l.startswith("SIM ready"))
        return self

    def _path(self):
        if not self.module_dirs:
            return MICROPYPATH
        return ":".join([str(d) for d in self.module_dirs] + [".frozen"])

    async def _read(self):
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                self._new_line.set()
                return
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._new_line.set()

    async def wait_line(self, predicate, timeout=TIMEOUT, start=0):
        """The first line (from index `start`) matching predicate; fails after timeout."""
        async with asyncio.timeout(timeout):
            seen = start
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if predicate(line):
                        return line
                if self._reader.done():
                    raise AssertionError("charger exited:\n" + "\n".join(self.lines[-30:]))
                self._new_line.clear()
                await self._new_line.wait()

    async def command(self, text):
        """Send one control command; return its answer (the text after `SIM `)."""
        mark = len(self.lines)
        self.proc.stdin.write((text + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.wait_line(lambda l: l.startswith("SIM "), start=mark)
        answer = line[4:]
        assert not answer.startswith("error"), answer
        return answer

    async def status(self):
        return json.loads(await self.command("status"))

    async def wait_status(self, condition, timeout=TIMEOUT):
        """Poll status until condition(status) is true; returns that status."""
        deadline = time.monotonic() + timeout
        while True:
            st = await self.status()
            if condition(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError("status never matched; last %r\n%s"
                                     % (st, "\n".join(self.lines[-30:])))
            await asyncio.sleep(0.1)  # polling interval, not a synchronization

    async def wait_exit(self, timeout=TIMEOUT):
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self):
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
