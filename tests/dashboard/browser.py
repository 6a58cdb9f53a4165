"""Browser-test plumbing: Debian's Chromium driven by Playwright, and the simulated charger
(`python -m tools.simulator --interactive`) as a real subprocess talking to the real server."""

import asyncio
import contextlib
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.live_server import fleet_token

CHROMIUM = os.environ.get("EVSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
UI_TIMEOUT_MS = 15_000  # generous for a loaded 2-core CI machine; only failures wait this long


def chromium_missing_reason() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Debian chromium not found at {CHROMIUM} (apt-get install chromium; CI installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


@contextlib.asynccontextmanager
async def chromium():
    """Debian's Chromium launched by Playwright (the test is skipped when it is missing)."""
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def screenshot_path(name: str) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")


class Simulator:
    """The CPython simulated charger driven through its interactive command language."""

    def __init__(self, process):
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, server_url: str, station_id: int = 1, *extra: str) -> "Simulator":
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tools.simulator",
            "--interactive",
            "--url",
            f"{server_url}/ws",
            "--station",
            str(station_id),
            "--token",
            fleet_token(server_url),
            "--interval",
            "0.5",
            "--speed",
            "10",
            "--seed",
            "1",
            "--drop-seconds",
            "3600",
            *extra,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        simulator = cls(process)
        await simulator.wait_for(r"<- connected")
        return simulator

    async def _read(self) -> None:
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip())
            self._changed.set()
        self._changed.set()

    async def command(self, text: str) -> None:
        self.process.stdin.write(f"{text}\n".encode())
        await self.process.stdin.drain()

    async def wait_for(self, pattern: str, after: int = 0, timeout: float = 15.0) -> str:
        """The first output line at index >= after that matches `pattern` (regex)."""
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for line in self.lines[after:]:
                        if regex.search(line):
                            return line
                    if self.process.stdout.at_eof():
                        raise AssertionError("simulator exited")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"simulator never printed {pattern!r}; output:\n" + "\n".join(self.lines[-30:])
            ) from None

    async def close(self) -> None:
        try:
            if self.process.returncode is None:
                await self.command("quit")
                await asyncio.wait_for(self.process.wait(), 10)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            self._reader.cancel()
