-- Offline authorization (issue 13): the signed card lists pushed to chargers and the sessions
-- a charger started while it could not reach the server.
-- stations.offline_auth: 1 (default) lets the station's charger start a listed card offline.
-- auth_lists: every list the server signed for a station (version V, kept for good: a charger
--   offline for long reports the version it had), `cards` the canonical comma-joined UIDs.
-- sessions.offline_local_id: the charger's local id of a session it started offline (NULL
--   for a session the server started); unique per station, so a repeated report is the same
--   session.

ALTER TABLE stations ADD COLUMN offline_auth INTEGER NOT NULL DEFAULT 1
    CHECK (offline_auth IN (0, 1));
CREATE TABLE auth_lists (
    station_id INTEGER NOT NULL REFERENCES stations (id),
    version INTEGER NOT NULL CHECK (version >= 1),
    offline INTEGER NOT NULL CHECK (offline IN (0, 1)),
    cards TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (station_id, version)
);
ALTER TABLE sessions ADD COLUMN offline_local_id INTEGER;
CREATE UNIQUE INDEX sessions_offline_local_id ON sessions (station_id, offline_local_id)
    WHERE offline_local_id IS NOT NULL;
