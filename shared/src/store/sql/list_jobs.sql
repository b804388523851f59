-- A page of a tenant's jobs, newest first. Keyset pagination on
-- (created_at, id): rows inserted while a client pages appear before its
-- cursor, never inside the pages it has not read yet. Read per status (the
-- one asked for, or all five) from `jobs_tenant_status_recent`, each range
-- in order and cut at the page size, then merged (migration 0008: there is
-- no index of a tenant's jobs across statuses).
-- $1 tenant · $2 status · $3 type · $4 correlation id · $5, $6 cursor · $7 limit
SELECT JOB_COLUMNS
FROM unnest(CASE WHEN $2::text IS NULL THEN enum_range(NULL::job_status)
                 ELSE ARRAY[$2::text::job_status] END) AS wanted (status_wanted)
CROSS JOIN LATERAL (
    SELECT j.*
    FROM jobs j
    WHERE j.tenant_id = $1
      AND j.status = wanted.status_wanted
      AND ($3::text IS NULL OR j.job_type = $3)
      AND ($4::text IS NULL OR j.correlation_id = $4)
      AND ($5::timestamptz IS NULL OR (j.created_at, j.id) < ($5, $6::uuid))
    ORDER BY j.created_at DESC, j.id DESC
    LIMIT $7
) page
ORDER BY created_at DESC, id DESC
LIMIT $7
