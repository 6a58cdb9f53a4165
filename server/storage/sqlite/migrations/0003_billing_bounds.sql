-- Billing the server can defend (issue 10).
-- stations.max_power_w: the station's plausibility limit (W); the server bills no interval
--   above it. Default 22 kW; the server refuses values above 50 kW (hard cap).
-- stations.emergency_latched_at: when the station's emergency latch was set (server time);
--   NULL = not latched. Survives a restart: no second alert, no stale banner.
-- readings.received_at: the server's receive time of the reading.
-- readings.charger_ts: the `ts` the charger claimed (NULL when it sent none); `ts` is the
--   reading's place on the session's server-bounded timeline.
-- readings.flag: why the reading was not billed as the charger claimed (NULL = as claimed).

ALTER TABLE stations ADD COLUMN max_power_w REAL NOT NULL DEFAULT 22000
    CHECK (max_power_w > 0 AND max_power_w <= 50000);
ALTER TABLE stations ADD COLUMN emergency_latched_at REAL;
ALTER TABLE readings ADD COLUMN received_at REAL;
ALTER TABLE readings ADD COLUMN charger_ts REAL;
ALTER TABLE readings ADD COLUMN flag TEXT;
