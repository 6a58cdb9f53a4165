-- OCPP 1.6J chargers next to the seed protocol (issue 12).
-- stations.protocol: what the station's charger speaks: 'seed' (/ws?role=publisher, the seed's
--   JSON) or 'ocpp16' (OCPP 1.6J at /ocpp/{chargePointId}).
-- stations.charge_point_id: the OCPP charge point identity (the URL's last segment and the HTTP
--   Basic user name), mapped to the integer station id; NULL for seed stations.

ALTER TABLE stations ADD COLUMN protocol TEXT NOT NULL DEFAULT 'seed'
    CHECK (protocol IN ('seed', 'ocpp16'));
ALTER TABLE stations ADD COLUMN charge_point_id TEXT;
CREATE UNIQUE INDEX stations_charge_point_id ON stations (charge_point_id)
    WHERE charge_point_id IS NOT NULL;
