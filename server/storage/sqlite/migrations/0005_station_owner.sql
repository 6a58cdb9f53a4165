-- Station ownership for several server processes on one database (issue 14).
-- stations.owner: who claimed the station last (a server process name); NULL = never claimed.
-- stations.owner_epoch: how many times it was claimed; a session create/end, progress row or
--   emergency latch carrying an older epoch is refused (server/storage/contract.py).
-- SQLite serves one process: the claims are kept for the same contract, and always succeed.

ALTER TABLE stations ADD COLUMN owner TEXT;
ALTER TABLE stations ADD COLUMN owner_epoch INTEGER NOT NULL DEFAULT 0;
