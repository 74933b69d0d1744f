-- The routing generation: every write that changes what serves where (subscriptions,
-- suspensions) takes the next number in its transaction and stamps the rows it wrote, so
-- each host applies changes in the order they were committed and can tell a stale view.
CREATE TABLE routing (
    id          BIGINT PRIMARY KEY,
    generation  BIGINT NOT NULL
);
INSERT INTO routing (id, generation) VALUES (1, 0);
ALTER TABLE subscriptions ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE modules ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
CREATE INDEX subscriptions_by_generation ON subscriptions (generation);
CREATE INDEX modules_by_generation ON modules (generation);

-- The vendor's signature of each version and the manifest exactly as signed, kept so that
-- a version arriving in another host's archive can be checked against this host's vendor
-- keys.
ALTER TABLE module_versions ADD COLUMN signature TEXT;
ALTER TABLE module_versions ADD COLUMN signed_manifest TEXT;

-- A gap-free position per municipality in the audit trail (readers page by it): taken
-- from audit_heads in the transaction that writes the row, like the change feed's cursor.
ALTER TABLE audit_log ADD COLUMN seq BIGINT;
UPDATE audit_log SET seq = numbered.n
    FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY lg_code ORDER BY id) AS n FROM audit_log) AS numbered
    WHERE audit_log.id = numbered.id;
CREATE TABLE audit_heads (
    lg_code  TEXT PRIMARY KEY NOT NULL,
    seq      BIGINT NOT NULL
);
INSERT INTO audit_heads (lg_code, seq) SELECT lg_code, MAX(seq) FROM audit_log GROUP BY lg_code;
CREATE UNIQUE INDEX audit_log_by_position ON audit_log (lg_code, seq);
