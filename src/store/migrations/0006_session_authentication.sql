-- How and when a session's user last proved who they are: the access token's
-- `amr` (space-separated methods: pwd, webauthn, otp, recovery) and
-- `auth_time`. Sessions made before this migration were password logins.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
ALTER TABLE sessions ADD COLUMN auth_time BIGINT;
UPDATE sessions SET auth_time = created_at;
