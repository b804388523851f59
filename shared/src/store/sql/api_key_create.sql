-- A new API key (only its secret's hash is stored).
-- $1 id · $2 tenant · $3 name · $4 secret hash · $5 scopes · $6 now
INSERT INTO api_keys (id, tenant_id, name, secret_hash, scopes, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
