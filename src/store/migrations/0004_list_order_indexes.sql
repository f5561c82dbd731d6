-- Lists are paged by a key that is unique and never changes, newest first: a
-- user's sessions by (created_at, id), audit events by (at, id). Each index
-- serves its list's order and the lookups the narrower one it replaces did.
CREATE INDEX sessions_user_created ON sessions (user_id, created_at, id);
DROP INDEX sessions_user;
CREATE INDEX audit_events_at_id ON audit_events (at, id);
DROP INDEX audit_events_at;
