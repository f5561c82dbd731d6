-- Rate-limit state shared by the instances on PostgreSQL (src/store/limits.rs):
-- one row per limit and key. `tat` is a GCRA theoretical arrival time, or for a
-- login turn the time from which it may be taken; the upkeep deletes a row from
-- `expires_at` on, when it says nothing an absent row would not. Times in
-- milliseconds. SQLite keeps these limits in memory and leaves the table empty.
CREATE TABLE rate_limits (
    limit_name TEXT NOT NULL,
    limit_key TEXT NOT NULL,
    tat BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (limit_name, limit_key)
);
CREATE INDEX rate_limits_expiry ON rate_limits (expires_at);
