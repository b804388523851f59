-- One job; with a tenant, only that tenant's (another tenant's job is "not found").
-- $1 id · $2 tenant or NULL (workers and operators)
SELECT JOB_COLUMNS FROM jobs WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)
