-- Business units that link to each other (WIT 1.2).

-- Which subscribed module answers a provided interface at a municipality. A row whose
-- module_id is NULL means "none chosen" (the platform's own data where it has some): rows
-- are never deleted, so every host sees the change under its routing generation.
CREATE TABLE providers (
    lg_code     TEXT NOT NULL,
    interface   TEXT NOT NULL,               -- receipts, resident-registry
    module_id   TEXT,
    chosen_at   TEXT NOT NULL,
    chosen_by   TEXT,
    generation  BIGINT NOT NULL,
    PRIMARY KEY (lg_code, interface)
);
CREATE INDEX providers_by_generation ON providers (generation);

-- The notice kinds a municipality takes, each into one of its modules, from the sending
-- modules it names (a JSON array of module ids).
CREATE TABLE notice_acceptances (
    lg_code      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    module_id    TEXT NOT NULL,
    senders      TEXT NOT NULL,
    accepted_at  TEXT NOT NULL,
    accepted_by  TEXT,
    PRIMARY KEY (lg_code, kind)
);

-- Notices between municipalities: a log per receiving municipality (lg_code) with
-- gap-free sequences, and how far each receiving module has been given it.
CREATE TABLE notice_heads (
    lg_code   TEXT PRIMARY KEY NOT NULL,
    sequence  BIGINT NOT NULL
);

CREATE TABLE notices (
    lg_code       TEXT NOT NULL,             -- the receiving municipality
    sequence      BIGINT NOT NULL,
    module_id     TEXT NOT NULL,             -- the receiving module (from the acceptance)
    from_lg_code  TEXT NOT NULL,             -- set by the host
    from_module   TEXT NOT NULL,             -- set by the host
    kind          TEXT NOT NULL,
    subject       TEXT,
    payload       TEXT NOT NULL,             -- JSON
    sent_at       TEXT NOT NULL,
    PRIMARY KEY (lg_code, sequence)
);

CREATE TABLE notice_deliveries (
    lg_code     TEXT NOT NULL,
    module_id   TEXT NOT NULL,
    delivered   BIGINT NOT NULL,
    failures    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (lg_code, module_id)
);

-- The other party of a linked read (the provider on the consumer's row, the consumer on the
-- provider's) or of a notice (the sender or the receiver).
ALTER TABLE audit_log ADD COLUMN counterpart TEXT;

-- identity-numbers.find: a resident by 個人番号 (a 住所地 matching a 申告特例通知書).
CREATE INDEX resident_identity_numbers_by_number ON resident_identity_numbers (lg_code, individual_number);
