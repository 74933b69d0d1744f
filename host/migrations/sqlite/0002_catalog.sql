-- Vendors and the Ed25519 public keys the operator trusts for them.
CREATE TABLE vendors (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    public_key    TEXT NOT NULL,             -- base64 of the 32-byte Ed25519 key
    auto_approve  BIGINT NOT NULL DEFAULT 0,  -- 1: admitted versions are approved at once
    created_at    TEXT NOT NULL
);

-- A module belongs to one vendor for life.
CREATE TABLE modules (
    id                TEXT PRIMARY KEY NOT NULL,
    vendor_id         TEXT NOT NULL REFERENCES vendors(id),
    suspended_reason  TEXT,                  -- not null: suspended everywhere (kill switch)
    created_at        TEXT NOT NULL
);

-- Component bytes by digest (shared by versions with identical bytes).
CREATE TABLE components (
    digest  TEXT PRIMARY KEY NOT NULL,
    bytes   BLOB NOT NULL
);

CREATE TABLE module_versions (
    module_id     TEXT NOT NULL REFERENCES modules(id),
    version       TEXT NOT NULL,
    digest        TEXT NOT NULL REFERENCES components(digest),
    manifest      TEXT NOT NULL,             -- the manifest as JSON
    status        TEXT NOT NULL,             -- pending | approved | rejected
    published_by  TEXT NOT NULL,
    published_at  TEXT NOT NULL,
    PRIMARY KEY (module_id, version)
);

-- Every review decision, with who and when; never updated.
CREATE TABLE reviews (
    module_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    decision    TEXT NOT NULL,               -- approved | rejected
    reason      TEXT NOT NULL,
    reviewer    TEXT NOT NULL,
    decided_at  TEXT NOT NULL
);

-- A municipality's use of a module: grants, pin, the version serving it now and before.
CREATE TABLE subscriptions (
    lg_code           TEXT NOT NULL REFERENCES municipalities(lg_code),
    module_id         TEXT NOT NULL REFERENCES modules(id),
    grants            TEXT NOT NULL,         -- JSON array of capability names
    pinned            BIGINT NOT NULL DEFAULT 0,
    version           TEXT NOT NULL,
    previous_version  TEXT,
    active            BIGINT NOT NULL DEFAULT 1,  -- 0: unplugged (data kept, exportable)
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (lg_code, module_id)
);
