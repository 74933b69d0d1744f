-- Events between the modules of one municipality (WIT `events`): a log per municipality
-- with gap-free sequences, and how far each subscribed module has been given it.

CREATE TABLE event_heads (
    lg_code   TEXT PRIMARY KEY NOT NULL,
    sequence  BIGINT NOT NULL
);

CREATE TABLE module_events (
    lg_code       TEXT NOT NULL,
    sequence      BIGINT NOT NULL,
    source        TEXT NOT NULL,             -- the publishing module (set by the host)
    topic         TEXT NOT NULL,
    subject       TEXT,
    payload       TEXT NOT NULL,             -- JSON
    published_at  TEXT NOT NULL,
    PRIMARY KEY (lg_code, sequence)
);

CREATE TABLE event_deliveries (
    lg_code     TEXT NOT NULL,
    module_id   TEXT NOT NULL,
    delivered   BIGINT NOT NULL,
    failures    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (lg_code, module_id)
);
