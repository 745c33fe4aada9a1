-- A per-user counter of credential changes (password set, account disabled), bumped in the
-- very UPDATE that makes the change. Sessions, codes and grants record the epoch their
-- authentication was made under and stand only while it is still the user's: unlike
-- `credentials_changed_at` (unix seconds, kept for information), this also decides a login
-- that raced a change within the same second.
ALTER TABLE users ADD COLUMN credentials_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN credentials_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE authorization_codes ADD COLUMN credentials_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN credentials_epoch BIGINT NOT NULL DEFAULT 0;

-- Carry the old rule over: every user starts at epoch 1, and what was authenticated at or
-- after the user's `credentials_changed_at` is under it; everything older stays at 0, dead.
UPDATE users SET credentials_epoch = 1;
UPDATE sessions SET credentials_epoch = 1 WHERE auth_time >=
    (SELECT u.credentials_changed_at FROM users u WHERE u.id = sessions.user_id);
UPDATE authorization_codes SET credentials_epoch = 1 WHERE auth_time >=
    (SELECT u.credentials_changed_at FROM users u WHERE u.id = authorization_codes.user_id);
UPDATE grants SET credentials_epoch = 1 WHERE auth_time >=
    (SELECT u.credentials_changed_at FROM users u WHERE u.id = grants.user_id);
