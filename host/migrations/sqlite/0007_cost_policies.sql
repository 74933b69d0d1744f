-- The cost policy an operator has published for a month, so every municipality can see its
-- own share. Amounts are not stored: they follow from this policy and the month's usage.
CREATE TABLE cost_policies (
    month TEXT PRIMARY KEY,
    total BIGINT NOT NULL,
    fixed_weight BIGINT NOT NULL,
    population_weight BIGINT NOT NULL,
    usage_weight BIGINT NOT NULL,
    measure TEXT NOT NULL,
    published_at TEXT NOT NULL
);
