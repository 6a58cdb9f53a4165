"""The CSV export walks a long history by keyset (started_at, id), on both backends: sessions
added while the file is being read (a charger starting one mid-download, a late offline start)
neither repeat a row nor push one out of the file, a page boundary inside sessions that share
a start time loses none of them, and a bad cursor is a ValueError before any SQL runs."""

import csv
import io

import pytest

from server.storage import MAX_PAGE
from server.storage.export import export_sessions

from .conftest import outside

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


async def history(storage, target, count: int, spacing: float = 60.0) -> list[int]:
    """`count` closed sessions on station 1 (bulk, in one statement); their ids newest first."""
    await storage.add_station("Estación 1", 7.0, station_id=1)
    await storage.add_station("Estación 2", 7.0, station_id=2)
    user = await storage.add_user("Juan Pérez")
    await storage.add_card("04A1B2C3", user.id)
    await outside(
        target,
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO sessions (station_id, user_id, card_uid, started_at, ended_at, kwh,"
        f" cost, tariff, end_reason) SELECT 1, {user.id}, '04A1B2C3', {T0} + i * {spacing},"
        f" {T0} + i * {spacing} + 30, 1.5, 10.5, 7.0, 'local_stop' FROM n",
        (count - 1,),
    )
    rows = await outside(target, "SELECT id FROM sessions ORDER BY started_at DESC, id DESC")
    return [row[0] for row in rows]


def exported_ids(text: str) -> list[int]:
    return [int(row["session_id"]) for row in csv.DictReader(io.StringIO(text[1:]))]


class AddsSessionsAfterTheFirstPage:
    """The real storage, through which the export reads; once it has read its first page,
    sessions are started on it as a charger (and a late offline report) would, so they land
    between two pages of the download."""

    def __init__(self, storage, started):
        self._storage, self._started, self.added = storage, started, []

    def __getattr__(self, name):
        return getattr(self._storage, name)

    async def _after(self, page):
        if not self.added:
            for started_at in self._started:
                self.added.append(
                    await self._storage.create_session(1, 1, "04A1B2C3", started_at, 7.0, {})
                )
        return page

    async def sessions_before(self, **filters):
        return await self._after(await self._storage.sessions_before(**filters))

    async def list_sessions(self, **filters):  # what an OFFSET walk reads
        return await self._after(await self._storage.list_sessions(**filters))


async def test_sessions_started_during_an_export_neither_repeat_nor_push_out_a_row(storage, target):
    ids = await history(storage, target, MAX_PAGE + 205)
    newest = T0 + 60 * (MAX_PAGE + 300)  # a charger starts a session: above every row read
    late = T0 + 60 * 100.5  # an offline start reported late: below the first page
    reading = AddsSessionsAfterTheFirstPage(storage, [newest, late])
    text, count = await export_sessions(reading)
    new, old = reading.added
    assert len(reading.added) == 2
    exported = exported_ids(text)
    assert len(exported) == len(set(exported)) == count  # no session twice
    # every session there was when the download began, in order; the late one in its place
    # (started after ids[-101]'s start, before ids[-102]'s), the new one not (it is above)
    assert exported == ids[:-101] + [old] + ids[-101:]
    assert new not in exported


async def test_a_page_boundary_inside_sessions_started_at_one_moment_loses_none(storage, target):
    ids = await history(storage, target, MAX_PAGE + 5, spacing=0.0)  # one started_at for all
    assert ids == sorted(ids, reverse=True)  # the tie broken by id, newest first
    text, count = await export_sessions(storage, station_id=1)
    assert exported_ids(text) == ids and count == MAX_PAGE + 5
    first = await storage.sessions_before(station_id=1, limit=3)
    after = await storage.sessions_before(
        station_id=1, before=(first[-1].started_at, first[-1].id), limit=3
    )
    assert [s.id for s in first + after] == ids[:6]
    assert await storage.sessions_before(station_id=2) == []


@pytest.mark.parametrize(
    "before, problem",
    [
        ((float("nan"), 5), "before started_at must be a finite number"),
        ((T0, 0), "before id must be a positive whole number"),
        ((T0, "5"), "before id must be a positive whole number"),
    ],
)
async def test_a_bad_cursor_is_refused_before_any_sql(storage, before, problem):
    with pytest.raises(ValueError, match=problem):
        await storage.sessions_before(before=before)
    with pytest.raises(ValueError, match="limit must be a whole number from 0 to 1000"):
        await storage.sessions_before(limit=MAX_PAGE + 1)
