-- Per-client policies (issue 10).
-- end_offline_on_logout: RP-initiated logout also revokes this client's offline_access
--   refresh families (by default they survive logout, OIDC Core §11).
-- introspect_any: a resource server may introspect every access token (RFC 7662 §4);
--   other clients only tokens issued to them or naming them in their audience.
-- tokens_revoked_at: tokens of this client issued at or before this unix second are
--   inactive (`client rotate-secret --revoke-tokens`); 0 = none.
ALTER TABLE clients ADD COLUMN end_offline_on_logout BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN introspect_any BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN tokens_revoked_at BIGINT NOT NULL DEFAULT 0;
