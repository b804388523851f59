-- A page of a tenant's jobs for the dashboard's lists (Jobs, Dead letter),
-- newest first, at a cost that does not follow the backlog:
--   - only the columns a row shows (never the payload or the result);
--   - each status range of jobs_tenant_status_recent (the one asked for, or
--     all five) is read in order from the cursor down and cut at $8 rows:
--     the page size without a filter; with a type or correlation id filter
--     (a type has no index, and a big correlation id this one serves
--     instead of dashboard_jobs_correlated.sql) a fixed slice, so a rare
--     value never reads a whole range on every 5 s refresh;
--   - when a range was cut, only the rows at or above the latest cut are
--     sure to be every match there is; the page keeps to them and returns
--     that cut (stop_at, stop_id): a page short of $7 rows goes on from it.
-- The cursor bound is a row comparison with no NULL branch, an index bound
-- in a generic plan too. Always one row at least: the cut (or NULLs), with
-- NULL job columns when nothing matched.
-- $1 tenant · $2 status or NULL · $3 type or NULL · $4 correlation id or
-- NULL · $5, $6 cursor or NULL · $7 rows wanted (page size + 1) · $8 rows
-- read per range
WITH scanned AS (
    SELECT wanted.status_wanted AS range, r.*
    FROM unnest(CASE WHEN $2::text IS NULL THEN enum_range(NULL::job_status)
                     ELSE ARRAY[$2::text::job_status] END) AS wanted (status_wanted)
    CROSS JOIN LATERAL (
        SELECT j.id, j.created_at, j.status::text AS status, j.job_type, j.attempts, j.max_attempts,
               j.priority, j.correlation_id, j.error_code, left(j.failure_reason, 500) AS failure_reason,
               j.completed_at, j.updated_at
        FROM jobs j
        WHERE j.tenant_id = $1
          AND j.status = wanted.status_wanted
          AND (j.created_at, j.id) < (coalesce($5::timestamptz, 'infinity'),
                                      coalesce($6::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
        ORDER BY j.created_at DESC, j.id DESC
        LIMIT $8
    ) AS r
),
ranges AS (
    SELECT DISTINCT ON (range) range, created_at, id, count(*) OVER (PARTITION BY range) AS n
    FROM scanned
    ORDER BY range, created_at, id
),
cut AS (
    SELECT created_at, id
    FROM ranges
    WHERE n >= $8
    ORDER BY created_at DESC, id DESC
    LIMIT 1
)
SELECT cut.created_at AS stop_at, cut.id AS stop_id, m.*
FROM (VALUES (1)) AS one (x)
LEFT JOIN cut ON true
LEFT JOIN LATERAL (
    SELECT s.id, s.created_at, s.status, s.job_type, s.attempts, s.max_attempts, s.priority,
           s.correlation_id, s.error_code, s.failure_reason, s.completed_at, s.updated_at
    FROM scanned s
    WHERE ($3::text IS NULL OR s.job_type = $3)
      AND ($4::text IS NULL OR s.correlation_id = $4)
      AND (cut.id IS NULL OR (s.created_at, s.id) >= (cut.created_at, cut.id))
    ORDER BY s.created_at DESC, s.id DESC
    LIMIT $7
) AS m ON true
