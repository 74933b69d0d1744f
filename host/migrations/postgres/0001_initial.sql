-- Municipalities (tenants), keyed by 全国地方公共団体コード.
CREATE TABLE municipalities (
    lg_code     TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    prefecture  TEXT NOT NULL,
    population  BIGINT NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

-- Per-municipality configuration of a module: the municipality's own name, address,
-- contact and the module's settings. Never hard-coded in modules.
CREATE TABLE module_config (
    lg_code     TEXT NOT NULL REFERENCES municipalities(lg_code),
    module_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (lg_code, module_id, key)
);

-- Key-value storage scoped to (municipality, module).
CREATE TABLE kv_entries (
    lg_code     TEXT NOT NULL,
    module_id   TEXT NOT NULL,
    -- Byte order, as in SQLite, so key listing and paging agree on both backends.
    key         TEXT COLLATE "C" NOT NULL,
    value       BYTEA NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (lg_code, module_id, key)
);
