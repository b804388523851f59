-- The jobs a tenant already created under these idempotency keys.
-- $1 tenant · $2 keys
SELECT JOB_COLUMNS FROM jobs WHERE tenant_id = $1 AND idempotency_key = ANY ($2::text[])
