-- Offline authorization, review findings; see sqlite/migrations/0007_offline_bounds.sql.

ALTER TABLE stations ADD COLUMN last_seen_at DOUBLE PRECISION;
CREATE INDEX sessions_by_card ON sessions (card_uid, started_at);
