-- A dashboard login: the new session, and in the same statement up to 100
-- expired sessions (of anyone) and the key's oldest live sessions beyond
-- the cap deleted, so the table stays bounded (migration 0011).
-- $1 token hash · $2 tenant · $3 scopes · $4 key id or NULL · $5 admin key
-- digest or NULL · $6 csrf token · $7 now · $8 expires at · $9 sessions kept
-- per key (the new one included)
WITH expired AS (
    DELETE FROM dashboard_sessions
    WHERE token_hash IN (
        SELECT token_hash FROM dashboard_sessions
        WHERE expires_at <= $7
        ORDER BY expires_at
        LIMIT 100
    )
),
over_cap AS (
    DELETE FROM dashboard_sessions
    WHERE token_hash IN (
        SELECT token_hash FROM dashboard_sessions
        WHERE (($4::uuid IS NULL AND key_id IS NULL) OR key_id = $4::uuid)
        ORDER BY created_at DESC
        OFFSET greatest($9::int8 - 1, 0)
    )
)
INSERT INTO dashboard_sessions
    (token_hash, tenant_id, scopes, key_id, admin_key_digest, csrf_token, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING created_at
