-- The municipality's standard data (data linkage): resident registry, identity numbers,
-- tax summaries, the change feed and its deliveries, and the audit trail of reads.

-- 住民基本台帳: one row per resident per municipality, keyed by 宛名番号.
CREATE TABLE residents (
    lg_code            TEXT NOT NULL,
    addressee_number   TEXT NOT NULL,        -- 宛名番号
    integrated_number  TEXT NOT NULL,        -- 団体内統合宛名番号
    household_number   TEXT NOT NULL,        -- 世帯番号
    name               TEXT NOT NULL,        -- byte for byte: 外字 (PUA) and IVS kept
    name_kana          TEXT NOT NULL,
    kana_key           TEXT NOT NULL, -- name_kana without spaces, for prefix search
    birth_date         TEXT NOT NULL,
    sex                TEXT NOT NULL,        -- male | female | unspecified
    relationship       TEXT NOT NULL,        -- 続柄
    postal_code        TEXT NOT NULL,
    address            TEXT NOT NULL,
    resident_since     TEXT NOT NULL,
    status             TEXT NOT NULL,        -- resident | moved-out | deceased
    status_changed_on  TEXT,
    status_reason      TEXT,
    PRIMARY KEY (lg_code, addressee_number)
);
CREATE INDEX residents_by_household ON residents (lg_code, household_number);
CREATE INDEX residents_by_kana ON residents (lg_code, kana_key, birth_date);

-- マイナンバー and 住民票コード, apart from the basic items: released only under their own
-- capability.
CREATE TABLE resident_identity_numbers (
    lg_code               TEXT NOT NULL,
    addressee_number      TEXT NOT NULL,
    individual_number     TEXT,
    resident_record_code  TEXT,
    PRIMARY KEY (lg_code, addressee_number)
);

-- 個人住民税 summary per resident and fiscal year; integer yen.
CREATE TABLE tax_summaries (
    lg_code           TEXT NOT NULL,
    addressee_number  TEXT NOT NULL,
    fiscal_year       BIGINT NOT NULL,
    total_income      BIGINT NOT NULL,       -- 総所得金額等
    income_based_tax  BIGINT NOT NULL,       -- 所得割額
    PRIMARY KEY (lg_code, addressee_number, fiscal_year)
);

-- The last cursor handed out per municipality: bumped inside the writing transaction, so
-- cursors are gap-free, strictly increasing and never reused.
CREATE TABLE linkage_heads (
    lg_code  TEXT PRIMARY KEY NOT NULL,
    cursor   BIGINT NOT NULL
);

-- The change feed.
CREATE TABLE linkage_changes (
    lg_code           TEXT NOT NULL,
    cursor            BIGINT NOT NULL,
    kind              TEXT NOT NULL,
    addressee_number  TEXT NOT NULL,
    household_number  TEXT NOT NULL,
    effective_date    TEXT NOT NULL,
    reason            TEXT NOT NULL,
    recorded_at       TEXT NOT NULL,
    PRIMARY KEY (lg_code, cursor)
);

-- How far the change feed was pushed to each (municipality, module). Advanced in the same
-- transaction as the module's writes for that change: exactly once.
CREATE TABLE change_deliveries (
    lg_code     TEXT NOT NULL,
    module_id   TEXT NOT NULL,
    delivered   BIGINT NOT NULL,
    failures    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (lg_code, module_id)
);

-- Every read of personal data by a module. Append-only: the API has no route that
-- changes or deletes a row.
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              TEXT NOT NULL,
    lg_code         TEXT NOT NULL,
    module_id       TEXT NOT NULL,
    module_version  TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    caller_subject  TEXT,
    caller_role     TEXT NOT NULL,
    interface       TEXT NOT NULL,           -- e.g. resident-registry.get
    query           TEXT NOT NULL,           -- the arguments, e.g. addressee-number=…
    records         TEXT NOT NULL            -- JSON array of the 宛名番号 returned
);
CREATE INDEX audit_log_by_municipality ON audit_log (lg_code, id);
