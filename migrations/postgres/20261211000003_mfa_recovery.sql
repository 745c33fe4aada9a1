-- MFA recovery with a waiting period (issue 8, item 4). Times are unix seconds (BIGINT).

-- One row per recovery request. `state` moves requested -> waiting -> effective, or to
-- cancelled from requested or waiting (src/authn/recovery.rs). Every change is a
-- conditional UPDATE on the state it expects, so two nodes never apply one step twice.
CREATE TABLE mfa_recoveries (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    via          TEXT NOT NULL,                -- password | password_reset
    state        TEXT NOT NULL,                -- requested | waiting | effective | cancelled
    requested_at BIGINT NOT NULL,
    confirm_by   BIGINT NOT NULL,              -- a requested recovery lapses after this
    confirmed_at BIGINT,
    effective_at BIGINT,                       -- set when confirmed: confirmed_at + the wait
    reminded_at  BIGINT,
    closed_at    BIGINT,                       -- took effect or was cancelled
    cancelled_by TEXT                          -- mail_link | account_page | second_factor | superseded
);
-- At most one open recovery per user.
CREATE UNIQUE INDEX mfa_recoveries_open ON mfa_recoveries (user_id)
    WHERE state IN ('requested', 'waiting');
-- The due-work routine's scan.
CREATE INDEX mfa_recoveries_due ON mfa_recoveries (effective_at) WHERE state = 'waiting';

-- Set when a recovery took effect: the user's next sign-ins reach no application until
-- they enrol a new second factor.
ALTER TABLE users ADD COLUMN must_enrol_factor BOOLEAN NOT NULL DEFAULT FALSE;
