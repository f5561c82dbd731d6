-- Passkeys (WebAuthn credentials) and the state of WebAuthn ceremonies under
-- way, kept here so that any instance can finish a ceremony another began.

CREATE TABLE passkeys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The credential id, base64url: unique across every account.
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- webauthn-rs's `Passkey` (public key, counter, backup flags), as JSON.
    credential TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- A ceremony is taken (deleted) by the request that finishes it: single use.
CREATE TABLE webauthn_ceremonies (
    id TEXT PRIMARY KEY,
    -- 'register' or 'login'.
    kind TEXT NOT NULL,
    -- For a registration: whose passkey it adds.
    user_id TEXT,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
