-- 0011: the dashboard (`/dashboard`, shared/src/http/dashboard/): its sessions,
-- and the dead letter by tenant.
--
-- A login with an API key makes one row; the browser's cookie holds a random
-- token, the row only its SHA-256 (a leaked table opens no session). The row
-- keeps what the key was at login: its tenant, its scopes, its id (NULL for
-- the bootstrap key JOBLINE_ADMIN_KEY, whose SHA-256 is kept instead, so a
-- changed admin key ends its sessions) and the session's CSRF token. Every
-- request reads the row by its hash and checks the key is still live (the
-- API's 5 s key cache), so a revoked key's sessions stop within 5 s.
--
-- Bounded: a login deletes up to 100 expired rows and the oldest live
-- sessions of its key beyond the cap (dashboard_session_create.sql), each
-- sweep deletes expired ones (dashboard_session_prune.sql), and logout
-- deletes its row.
CREATE TABLE dashboard_sessions (
    token_hash       bytea       PRIMARY KEY,
    tenant_id        text        NOT NULL,
    scopes           text[]      NOT NULL,
    key_id           uuid,
    admin_key_digest bytea,
    csrf_token       text        NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    CONSTRAINT dashboard_sessions_one_key CHECK ((key_id IS NULL) <> (admin_key_digest IS NULL))
);

-- The pruning of expired sessions, oldest first.
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
-- A key's sessions, newest first (the per-key cap).
CREATE INDEX dashboard_sessions_key ON dashboard_sessions (key_id, created_at DESC);

-- The dead letter of one tenant without reading every tenant's. An outbox
-- row has no tenant (a publish needs none, and the hot path writes nothing
-- more); the row's tenant is written when it goes to the dead letter
-- (mark_publish_failed.sql), the rare path, and this partial index holds
-- only dead-lettered rows: their count and newest rows per tenant
-- (stats.sql, dead_letter_outbox.sql, replay_dead_letter.sql) are a range
-- of it. A replayed row keeps its tenant and leaves the index.
--
-- The ALTER takes outbox's strongest lock until the migration commits (the
-- backfill and the index build are under it): wait at most 10 s for it,
-- then fail (and the next cold start retries) rather than queue every
-- create behind a long transaction. A row an older release dead-letters
-- meanwhile has no tenant; the sweeper gives it its job's
-- (dead_letter_adopt.sql).
SET LOCAL lock_timeout = '10s';
ALTER TABLE outbox ADD COLUMN tenant_id text;
RESET lock_timeout;
UPDATE outbox o SET tenant_id = j.tenant_id
FROM jobs j
WHERE j.id = o.job_id AND o.status = 'dead_letter';
CREATE INDEX outbox_dead_letter_tenant ON outbox (tenant_id, updated_at DESC) WHERE status = 'dead_letter';
