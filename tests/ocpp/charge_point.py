"""An OCPP 1.6J charge point for the tests: tests/ocpp/charge_point.js (npm `ocpp-rpc`, pinned in
tests/ocpp/package-lock.json; `make test` and .ci/run do `npm ci` there) driven over JSON lines."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
TIMEOUT = 20.0  # generous: only a failing test waits this long


def missing() -> str | None:
    if shutil.which("node") is None:
        return "node not found: install Node.js 18+ for the OCPP tests"
    if not (HERE / "node_modules" / "ocpp-rpc").is_dir():
        return "ocpp-rpc is not installed: run `npm ci` in tests/ocpp (make test does it)"
    return None


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ChargePoint:
    """`async with ChargePoint() as cp: await cp.connect(url, "CP-1", key)`, then `await cp.call(...)`."""

    async def __aenter__(self):
        problem = missing()
        if problem:
            raise RuntimeError(problem)
        self.process = await asyncio.create_subprocess_exec(
            "node",
            str(HERE / "charge_point.js"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=HERE,
        )
        self.received: list[dict] = []  # calls from the server, as the charge point got them
        self._answers: asyncio.Queue = asyncio.Queue()
        self._received_one = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc):
        if self.process.returncode is None:
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()

    async def _read(self):
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            if "received" in message:
                self.received.append(message)
                self._received_one.set()
            else:
                await self._answers.put(message)

    async def _ask(self, message: dict) -> dict:
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()
        answer = await asyncio.wait_for(self._answers.get(), TIMEOUT)
        assert "crash" not in answer, answer["crash"]
        return answer

    async def connect(
        self, base_url: str, identity: str, password: str | None, protocols=("ocpp1.6",)
    ) -> dict:
        return await self._ask(
            {
                "connect": {
                    "endpoint": f"{base_url}/ocpp",
                    "identity": identity,
                    "password": password,
                    "protocols": list(protocols),
                }
            }
        )

    async def call(self, action: str, params: dict) -> dict:
        """The server's answer (schema-checked by ocpp-rpc); AssertionError on a CALLERROR."""
        answer = await self._ask({"call": action, "params": params})
        assert "result" in answer, answer
        return answer["result"]

    async def answer(self, action: str, answer: dict) -> None:
        """Answer the server's next `action` calls with `answer` (default: Accepted)."""
        assert (await self._ask({"answer": action, "with": answer})) == {"answering": action}

    async def close(self) -> None:
        await self._ask({"close": True})

    async def wait_received(self, action: str) -> dict:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for message in self.received:
                    if message["received"] == action:
                        return message["params"]
                self._received_one.clear()
                await self._received_one.wait()
