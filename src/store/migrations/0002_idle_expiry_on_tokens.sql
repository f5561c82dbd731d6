-- A session's last use and idle expiry move to its current refresh token, the
-- row a rotation writes anyway: rotating then writes the claimed token and its
-- successor, and the session's row only changes when it is revoked.
-- The default only fills the rows that exist now; every insert names the column.
ALTER TABLE refresh_tokens ADD COLUMN idle_expires_at BIGINT NOT NULL DEFAULT 0;
UPDATE refresh_tokens
   SET idle_expires_at = (SELECT idle_expires_at FROM sessions WHERE sessions.id = refresh_tokens.session_id);
ALTER TABLE sessions DROP COLUMN last_used_at;
ALTER TABLE sessions DROP COLUMN idle_expires_at;
-- A session's newest token (its last use, its idle expiry) is the last entry of
-- its range here.
DROP INDEX refresh_tokens_session;
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id, issued_at);
