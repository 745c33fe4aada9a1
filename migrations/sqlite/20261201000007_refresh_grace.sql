-- Opt-in refresh grace (RFC 9700 §4.14.2 trade-off, see docs/architecture.md): a client may
-- be registered with a window in which a refresh token presented again returns the same
-- successor instead of revoking the family. The successor is kept sealed under a sub-key
-- of the key-encryption key, with the spent token's hash as associated data, on the spent
-- token's row; it is written only for clients with a window.
ALTER TABLE clients ADD COLUMN refresh_grace_secs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refresh_tokens ADD COLUMN successor_sealed BLOB;
