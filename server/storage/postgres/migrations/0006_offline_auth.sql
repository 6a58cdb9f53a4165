-- Offline authorization (issue 13); see sqlite/migrations/0006_offline_auth.sql. The flags are
-- INTEGER 0/1 like cards.enabled; a local id is up to 2^31 + 2^30 - 1 (BIGINT).

ALTER TABLE stations ADD COLUMN offline_auth INTEGER NOT NULL DEFAULT 1
    CHECK (offline_auth IN (0, 1));
CREATE TABLE auth_lists (
    station_id  BIGINT NOT NULL REFERENCES stations(id),
    version     INTEGER NOT NULL CHECK (version >= 1),
    offline     INTEGER NOT NULL CHECK (offline IN (0, 1)),
    cards       TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (station_id, version)
);
ALTER TABLE sessions ADD COLUMN offline_local_id BIGINT;
CREATE UNIQUE INDEX sessions_offline_local_id ON sessions (station_id, offline_local_id)
    WHERE offline_local_id IS NOT NULL;
