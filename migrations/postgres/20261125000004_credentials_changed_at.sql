-- When the user's credentials last changed (password set, account disabled). Sessions and
-- grants authenticated before it stop working, whatever raced the change.
ALTER TABLE users ADD COLUMN credentials_changed_at BIGINT NOT NULL DEFAULT 0;
