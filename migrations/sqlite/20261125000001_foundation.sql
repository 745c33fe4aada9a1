-- Foundation: clients, users, signing keys. Times are unix seconds (BIGINT) in both stores.

CREATE TABLE clients (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    kind                      TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash               BLOB,
    redirect_uris             TEXT NOT NULL,   -- JSON array of strings
    post_logout_redirect_uris TEXT NOT NULL,   -- JSON array of strings
    grant_types               TEXT NOT NULL,   -- space-separated
    scope                     TEXT NOT NULL,   -- space-separated
    resources                 TEXT NOT NULL,   -- JSON array of strings
    access_token_ttl          BIGINT,
    first_party               BOOLEAN NOT NULL,
    created_at                BIGINT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    email          TEXT NOT NULL,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash  TEXT,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    roles          TEXT NOT NULL,              -- JSON array of strings
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_lower ON users (LOWER(email));

CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    state              TEXT NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired')),
    alg                TEXT NOT NULL,
    bits               BIGINT NOT NULL,
    private_key_sealed BLOB NOT NULL,
    public_n           TEXT NOT NULL,
    public_e           TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    activated_at       BIGINT,
    deactivated_at     BIGINT,
    retires_at         BIGINT
);
-- At most one key signs and at most one waits: rotation can never leave two of either.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (state) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';
