-- Accounts: second factors (TOTP, backup codes), logins in progress, shared throttle
-- buckets, the factors behind each session, clients that demand MFA, and audit lookups by
-- user. Times are unix seconds (BIGINT).

ALTER TABLE sessions ADD COLUMN factors TEXT NOT NULL DEFAULT '[]';  -- JSON [{"kind","at"}]
ALTER TABLE clients ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE audit_events ADD COLUMN user_agent TEXT;
CREATE INDEX audit_events_user_at ON audit_events (user_id, at);

-- The account page lists a user's apps.
CREATE INDEX grants_user ON grants (user_id);

CREATE TABLE totp_credentials (
    user_id        TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed  BLOB NOT NULL,              -- sealed under the key-encryption key
    created_at     BIGINT NOT NULL,
    confirmed_at   BIGINT,                     -- NULL while enrolment is pending
    last_used_step BIGINT NOT NULL DEFAULT 0   -- RFC 6238 §5.2: no step accepted twice
);
CREATE INDEX totp_credentials_unconfirmed ON totp_credentials (created_at)
    WHERE confirmed_at IS NULL;

CREATE TABLE backup_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BLOB NOT NULL,                  -- keyed hash of the code
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE pending_logins (
    id_hash    BLOB PRIMARY KEY,               -- SHA-256 of the cookie value
    state      TEXT NOT NULL,                  -- JSON of the login state machine
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX pending_logins_expires ON pending_logins (expires_at);

CREATE TABLE throttle_buckets (
    key           TEXT PRIMARY KEY,
    count         BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX throttle_buckets_updated ON throttle_buckets (updated_at);

-- Sessions that signed in before this migration used a password (their amr says so):
-- record it as their factor, so that a step-up of such a session reaches multi-factor.
UPDATE sessions
   SET factors = '[{"kind":"password","at":' || CAST(auth_time AS TEXT) || '}]'
 WHERE factors = '[]' AND amr LIKE '%pwd%';
