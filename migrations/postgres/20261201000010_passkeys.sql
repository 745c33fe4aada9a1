-- Passkeys (WebAuthn discoverable credentials), each user's random WebAuthn user handle,
-- and WebAuthn ceremonies in progress. Times are unix seconds (BIGINT).

-- Random, created on first use; many users have none yet (NULLs do not collide).
ALTER TABLE users ADD COLUMN webauthn_handle TEXT;
CREATE UNIQUE INDEX users_webauthn_handle ON users (webauthn_handle);

CREATE TABLE passkeys (
    id                   TEXT PRIMARY KEY,          -- random public id for the account page
    user_id              TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id        BYTEA NOT NULL UNIQUE,     -- unique across all users
    name                 TEXT NOT NULL,
    credential           TEXT NOT NULL,             -- webauthn-rs Passkey as JSON (no secret)
    counter              BIGINT NOT NULL,           -- WebAuthn signature counter last seen
    backup_eligible      BOOLEAN NOT NULL,
    backed_up            BOOLEAN NOT NULL,
    created_at           BIGINT NOT NULL,
    last_used_at         BIGINT,
    counter_regressed_at BIGINT                     -- a refused assertion's counter went back
);
CREATE INDEX passkeys_user ON passkeys (user_id);

CREATE TABLE webauthn_ceremonies (
    id_hash    BYTEA PRIMARY KEY,              -- SHA-256 of the cookie value
    state      TEXT NOT NULL,                  -- JSON: webauthn-rs state and its purpose
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies (expires_at);
