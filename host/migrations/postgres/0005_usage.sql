-- Usage per municipality, module and day (Japan time), for metering and cost allocation.
CREATE TABLE usage_daily (
    lg_code      TEXT NOT NULL,
    module_id    TEXT NOT NULL,
    day          TEXT NOT NULL,              -- YYYY-MM-DD
    requests     BIGINT NOT NULL,
    errors       BIGINT NOT NULL,
    module_us    BIGINT NOT NULL,            -- wall time inside the module's instance
    peak_memory  BIGINT NOT NULL,            -- largest linear memory of one request, bytes
    PRIMARY KEY (lg_code, module_id, day)
);
