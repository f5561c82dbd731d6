-- E-mail addresses, the one-time tokens mailed to them, and the outbox the
-- mails wait in until a worker has handed them to the SMTP server.

-- The verified address, as typed, and its case-folded key: unique among
-- verified addresses (NULLs are not equal to each other in either database).
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_key TEXT;
CREATE UNIQUE INDEX users_email_key ON users (email_key);
-- An address asked for and not yet verified: it counts for nothing.
ALTER TABLE users ADD COLUMN pending_email TEXT;

-- Password-reset and address-verification tokens, stored only as hashes.
CREATE TABLE mail_tokens (
    hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- 'reset' or 'verify'.
    purpose TEXT NOT NULL,
    -- For 'verify': the case-folded address the token verifies.
    email_key TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX mail_tokens_user ON mail_tokens (user_id, purpose);
CREATE INDEX mail_tokens_expiry ON mail_tokens (expires_at);

-- Mails to send. A row is queued in the transaction that made its token; a
-- worker claims it for a while (`claimed_until`), sends it, and empties its
-- bodies (which hold the link) once sent.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    -- After this the mail is not worth sending (its link has expired).
    expires_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    sent_at BIGINT,
    failed_at BIGINT,
    last_error TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at);
