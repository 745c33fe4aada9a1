-- The mail outbox and the single-use tokens that mailed links carry. Times are unix
-- seconds (BIGINT).

-- A message is written here in the same transaction as the state change that sends it;
-- the outbox worker delivers it (several nodes share the work: a claimed row is leased
-- through `locked_until`). The body holds links with tokens, so it is sealed with a
-- sub-key of the key-encryption key and erased once the message is delivered or given up.
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,                -- template name, e.g. password_reset
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_sealed     BYTEA,                         -- NULL once delivered or given up
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    sent_at         BIGINT,
    failed_at       BIGINT,                       -- given up after mail.max_attempts
    last_error      TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;

-- Password reset, invitation, e-mail confirmation and MFA recovery links: a 256-bit token
-- of which only the SHA-256 is stored, single use (`used_at`), bound to the credentials
-- epoch it was issued under.
CREATE TABLE account_tokens (
    token_hash        BYTEA PRIMARY KEY,
    purpose           TEXT NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email             TEXT,                       -- the address being confirmed, if any
    credentials_epoch BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    used_at           BIGINT
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires ON account_tokens (expires_at);
