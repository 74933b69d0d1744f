-- Storage per municipality, module and day: the largest module storage (kv keys and
-- values, bytes) sampled that day. From this migration on, `module_us` records CPU time
-- spent in the module (thread CPU clock), not wall time.
ALTER TABLE usage_daily ADD COLUMN storage_bytes BIGINT NOT NULL DEFAULT 0;
