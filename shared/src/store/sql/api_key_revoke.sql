-- Revokes a key; it stops working at once (keys are checked on every request).
-- $1 id · $2 now
UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1 RETURNING id
