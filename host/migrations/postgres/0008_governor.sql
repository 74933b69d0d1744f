-- What each (municipality, module) keeps in kv, updated with every write, so the storage
-- quota ([limits.storage] kv_bytes, kv_keys) is checked without scanning its entries.
CREATE TABLE kv_usage (
    lg_code     TEXT NOT NULL,
    module_id   TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    keys        BIGINT NOT NULL,
    PRIMARY KEY (lg_code, module_id)
);
INSERT INTO kv_usage (lg_code, module_id, bytes, keys)
    SELECT lg_code, module_id, SUM(octet_length(key) + octet_length(value)), COUNT(*) FROM kv_entries GROUP BY lg_code, module_id;

-- Events of one (municipality, source module), for [limits.storage] events_kept.
CREATE INDEX module_events_by_source ON module_events (lg_code, source, sequence);

-- Which host works a delivery queue now, when several share the database; another takes
-- over once the lease has expired.
CREATE TABLE delivery_leases (
    feed        TEXT NOT NULL,
    lg_code     TEXT NOT NULL,
    module_id   TEXT NOT NULL,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,             -- milliseconds since the epoch
    PRIMARY KEY (feed, lg_code, module_id)
);
