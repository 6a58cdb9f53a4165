-- Per-station charger keys (server/auth.py): only the SHA-256 of the key is stored.
-- NULL = no key issued yet (the charger can still use a JWT bound to the station).

ALTER TABLE stations ADD COLUMN key_hash TEXT;
