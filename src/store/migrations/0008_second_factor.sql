-- A second factor: an authenticator app's secret (TOTP, RFC 6238) with the
-- account's recovery codes, and the sign-ins waiting for their second step.

CREATE TABLE totp_factors (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- base32, or sealed with the key-encryption key where one is configured.
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- NULL until a code confirms the setup: only a confirmed one is asked for.
    confirmed_at BIGINT,
    -- The last time step a code was accepted for: each code is accepted once.
    last_step BIGINT
);

-- Single-use codes for when the app is lost; SHA-256 of each, never the code.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- A password sign-in that still needs its second step: the `mfa_token`
-- (SHA-256 of it), used once, within minutes.
CREATE TABLE mfa_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The password hash the first step was checked against: a password
    -- changed meanwhile voids the sign-in.
    password_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- Wrong codes so far: past a few, the sign-in starts over.
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);
