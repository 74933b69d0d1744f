-- Browser sign-in at the edge (host/src/signin). Every secret the browser holds (a cookie,
-- an OIDC `state`, a one-time code) is stored only as its SHA-256, so a copy of the database
-- signs no one in. Times are seconds since the epoch.

-- An authorization-code flow in progress: taken (deleted) by the callback that ends it.
CREATE TABLE sign_in_flows (
    state_hash      TEXT PRIMARY KEY,
    browser_hash    TEXT NOT NULL,           -- the flow cookie that started it
    lg_code         TEXT NOT NULL,
    provider        TEXT NOT NULL,           -- the identity provider's issuer
    nonce           TEXT NOT NULL,
    code_verifier   TEXT NOT NULL,
    return_origin   TEXT NOT NULL,           -- `{module}--{lg_code}`: the module origin to hand off to
    return_path     TEXT NOT NULL,
    binding         TEXT NOT NULL,           -- the module origin's pending-sign-in cookie
    expires_at      BIGINT NOT NULL
);
CREATE INDEX sign_in_flows_by_municipality ON sign_in_flows (lg_code, expires_at);

-- A signed-in person at one municipality, shared by every replica: signing out deletes it.
CREATE TABLE sign_in_sessions (
    id_hash         TEXT PRIMARY KEY,        -- the platform origin's session cookie
    lg_code         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    principal       TEXT NOT NULL,           -- the verified claims (JSON)
    created_at      BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,         -- for the idle expiry, refreshed at most once a minute
    expires_at      BIGINT NOT NULL          -- the absolute expiry
);

-- The cookie a session has on one module origin; only good on that origin.
CREATE TABLE sign_in_origins (
    cookie_hash     TEXT PRIMARY KEY,
    session_hash    TEXT NOT NULL,
    origin          TEXT NOT NULL            -- `{module}--{lg_code}`
);
CREATE INDEX sign_in_origins_by_session ON sign_in_origins (session_hash);

-- A one-time code that carries a session from the platform origin to a module origin.
CREATE TABLE sign_in_handoffs (
    code_hash       TEXT PRIMARY KEY,
    session_hash    TEXT NOT NULL,
    origin          TEXT NOT NULL,
    return_path     TEXT NOT NULL,
    binding         TEXT NOT NULL,
    expires_at      BIGINT NOT NULL
);

-- A form a browser posted before it was signed in, posted again (once) after sign-in.
CREATE TABLE sign_in_replays (
    id_hash         TEXT PRIMARY KEY,
    binding         TEXT NOT NULL,           -- the pending-sign-in cookie of the browser that posted it
    origin          TEXT NOT NULL,
    path            TEXT NOT NULL,
    body            TEXT NOT NULL,           -- application/x-www-form-urlencoded, bounded
    expires_at      BIGINT NOT NULL
);
