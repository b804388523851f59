-- A page of a tenant's jobs, newest first. Keyset pagination on
-- (created_at, id): rows inserted while a client pages appear before its
-- cursor, never inside the pages it has not read yet.
-- $1 tenant · $2 status · $3 type · $4 correlation id · $5, $6 cursor · $7 limit
SELECT JOB_COLUMNS
FROM jobs
WHERE tenant_id = $1
  AND ($2::text IS NULL OR status = $2::text::job_status)
  AND ($3::text IS NULL OR job_type = $3)
  AND ($4::text IS NULL OR correlation_id = $4)
  AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $7
