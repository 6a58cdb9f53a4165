-- OCPP 1.6J chargers next to the seed protocol (issue 12); see
-- sqlite/migrations/0004_ocpp_stations.sql.

ALTER TABLE stations ADD COLUMN protocol TEXT NOT NULL DEFAULT 'seed'
    CHECK (protocol IN ('seed', 'ocpp16'));
ALTER TABLE stations ADD COLUMN charge_point_id TEXT;
CREATE UNIQUE INDEX stations_charge_point_id ON stations (charge_point_id)
    WHERE charge_point_id IS NOT NULL;
