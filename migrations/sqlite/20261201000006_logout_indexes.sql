-- Logout and password changes end a session's or a user's unredeemed codes
-- (consume_session_codes, consume_user_codes); without these each was a full scan of
-- authorization_codes. Every other WHERE they run is served by an existing index:
-- sessions_user (end_user_sessions, end_other_sessions, list_user_sessions), grants_sid
-- (revoke_session_grants), grants_user (revoke_user_grants, list_user_grants).
CREATE INDEX authorization_codes_sid ON authorization_codes (sid);
CREATE INDEX authorization_codes_user ON authorization_codes (user_id);
