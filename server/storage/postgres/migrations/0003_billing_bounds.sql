-- Billing the server can defend (issue 10); see sqlite/migrations/0003_billing_bounds.sql.

ALTER TABLE stations ADD COLUMN max_power_w DOUBLE PRECISION NOT NULL DEFAULT 22000
    CHECK (max_power_w > 0 AND max_power_w <= 50000);
ALTER TABLE stations ADD COLUMN emergency_latched_at DOUBLE PRECISION;
ALTER TABLE readings ADD COLUMN received_at DOUBLE PRECISION;
ALTER TABLE readings ADD COLUMN charger_ts DOUBLE PRECISION;
ALTER TABLE readings ADD COLUMN flag TEXT;
