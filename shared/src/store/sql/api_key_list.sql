-- Keys, newest first, optionally of one tenant. $1 tenant or NULL
SELECT id, tenant_id, name, scopes, created_at, revoked_at
FROM api_keys
WHERE $1::text IS NULL OR tenant_id = $1
ORDER BY created_at DESC
