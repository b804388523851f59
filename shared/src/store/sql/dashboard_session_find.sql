-- A live dashboard session by its token's hash (expired ones are not found).
-- $1 token hash · $2 now
SELECT tenant_id, scopes, key_id, admin_key_digest, csrf_token, expires_at
FROM dashboard_sessions
WHERE token_hash = $1 AND expires_at > $2
