-- Offline authorization, review findings (session 19).
-- stations.last_seen_at: when the server last saw the station's keyed charger connected (written
--   when its connection ends): an offline start reported after a server restart is placed no
--   earlier than this (minus the liveness tolerance); NULL: never seen since this column exists.
-- sessions_by_card: the offline list ranks the enabled cards by their latest session's start,
--   a per-card lookup that scanned every session without it.

ALTER TABLE stations ADD COLUMN last_seen_at REAL;
CREATE INDEX sessions_by_card ON sessions (card_uid, started_at);
