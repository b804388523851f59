-- The key a request presents, by its public id. $1 id
SELECT tenant_id, secret_hash, scopes, revoked_at FROM api_keys WHERE id = $1
