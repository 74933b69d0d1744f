-- Browser sign-in at the edge (host/src/signin). Every secret the browser holds (a cookie,
-- a one-time code) is stored only as its SHA-256, so a copy of the database signs no one
-- in. Flows in progress are not here: the browser carries them in a signed cookie. Times
-- are seconds since the epoch.

-- A signed-in person at one municipality, shared by every replica: signing out deletes it.
CREATE TABLE sign_in_sessions (
    id_hash         TEXT PRIMARY KEY,        -- the platform origin's session cookie
    flow_hash       TEXT NOT NULL UNIQUE,    -- the flow that made it: a flow signs in once
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
