"""The throwaway engines the storage and cluster tests stand on start, answer and vanish."""

from __future__ import annotations

import asyncio

import asyncpg
import nats

from tools import services


def test_postgres_answers_sql_and_is_removed_after():
    with services.postgres() as pg:
        directory = pg.directory

        async def query() -> int:
            connection = await asyncpg.connect(pg.url)
            try:
                return await connection.fetchval("SELECT 40 + 2")
            finally:
                await connection.close()

        assert asyncio.run(query()) == 42
        other = pg.create_database("second")
        assert other.endswith("/second?host=" + str(directory))
    assert not directory.exists()


def test_nats_carries_a_request_and_stops():
    with services.nats() as bus:

        async def round_trip() -> bytes:
            client = await nats.connect(bus.url)
            try:

                async def echo(msg):
                    await msg.respond(msg.data.upper())

                await client.subscribe("evse.echo", cb=echo)
                reply = await client.request("evse.echo", b"stop", timeout=2)
                return reply.data
            finally:
                await client.close()

        assert asyncio.run(round_trip()) == b"STOP"
        process = bus.process
    assert process.poll() is not None
