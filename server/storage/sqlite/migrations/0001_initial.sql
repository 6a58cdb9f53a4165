-- Initial schema. Times are unix seconds (REAL, UTC).

CREATE TABLE stations (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    tariff  REAL NOT NULL CHECK (tariff >= 0)
);

CREATE TABLE users (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL
);

CREATE TABLE cards (
    uid      TEXT PRIMARY KEY,
    user_id  INTEGER NOT NULL REFERENCES users(id),
    enabled  INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1))
);
CREATE INDEX cards_by_user ON cards(user_id);

-- AUTOINCREMENT: a session id is never reused, even after the newest session row is gone,
-- because a charger may still remember an old one.
CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    station_id    INTEGER NOT NULL REFERENCES stations(id),
    user_id       INTEGER NOT NULL REFERENCES users(id),
    card_uid      TEXT NOT NULL,
    started_at    REAL NOT NULL,
    ended_at      REAL,
    kwh           REAL NOT NULL DEFAULT 0,
    cost          REAL NOT NULL DEFAULT 0,
    tariff        REAL NOT NULL,
    end_reason    TEXT,
    energy_state  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX sessions_by_station ON sessions(station_id, started_at);
CREATE INDEX sessions_by_user ON sessions(user_id, started_at);
CREATE INDEX sessions_by_start ON sessions(started_at);
CREATE INDEX sessions_open ON sessions(station_id) WHERE ended_at IS NULL;

CREATE TABLE readings (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id),
    ts          REAL NOT NULL,
    v           REAL,
    a           REAL,
    w           REAL,
    wh          REAL,
    kwh         REAL
);
CREATE INDEX readings_by_session ON readings(session_id, ts);

CREATE TABLE alerts (
    id               INTEGER PRIMARY KEY,
    station_id       INTEGER NOT NULL REFERENCES stations(id),
    session_id       INTEGER REFERENCES sessions(id),
    kind             TEXT NOT NULL,
    created_at       REAL NOT NULL,
    detail           TEXT NOT NULL DEFAULT '',
    acknowledged_at  REAL
);
CREATE INDEX alerts_by_station ON alerts(station_id, created_at);
