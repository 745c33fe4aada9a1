-- OAuth 2.0 / OIDC flows: browser sessions, consents, authorization codes, grants (refresh
-- families), refresh tokens, revoked access-token ids, audit events.

CREATE TABLE sessions (
    id_hash      BYTEA PRIMARY KEY,            -- SHA-256 of the cookie value
    sid          TEXT NOT NULL UNIQUE,         -- public id, the `sid` claim
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent   TEXT NOT NULL,
    ip           TEXT NOT NULL,
    auth_time    BIGINT NOT NULL,
    amr          TEXT NOT NULL,                -- space-separated methods
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,              -- absolute lifetime
    ended_at     BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE authorization_codes (
    code_hash      BYTEA PRIMARY KEY,          -- SHA-256 of the code
    grant_id       TEXT NOT NULL,              -- the grant its redemption creates
    client_id      TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sid            TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    code_challenge TEXT NOT NULL,
    resource       TEXT,
    auth_time      BIGINT NOT NULL,
    amr            TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    consumed_at    BIGINT
);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);

CREATE TABLE grants (                          -- one per code redemption: a refresh family
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sid          TEXT NOT NULL,
    scope        TEXT NOT NULL,
    resource     TEXT,
    auth_time    BIGINT NOT NULL,
    amr          TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,              -- absolute lifetime of the family
    revoked_at   BIGINT
);
CREATE INDEX grants_sid ON grants (sid);
CREATE INDEX grants_expires ON grants (expires_at);

CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,              -- SHA-256 of the token
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at   BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE revoked_jtis (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL                 -- kept until the token would have expired
);
CREATE INDEX revoked_jtis_expires ON revoked_jtis (expires_at);

CREATE TABLE audit_events (
    id        TEXT PRIMARY KEY,
    kind      TEXT NOT NULL,
    at        BIGINT NOT NULL,
    client_id TEXT,
    user_id   TEXT,
    grant_id  TEXT,
    ip        TEXT,
    detail    TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
