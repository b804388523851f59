-- The dashboard's charts: how many jobs entered and left each status per
-- bucket of `job_counts` (migration 0009: minutes of the last hour, hours of
-- the last day) since $2, for one tenant and optionally one type. One range
-- of the (tenant_id, bucket) index; a few rows per type, status and bucket.
-- $1 tenant · $2 since · $3 type or NULL
SELECT bucket, status::text AS status,
       sum(entered)::bigint AS entered, sum(exited)::bigint AS exited
FROM job_counts
WHERE tenant_id = $1 AND bucket >= $2
  AND ($3::text IS NULL OR job_type = $3)
GROUP BY bucket, status
ORDER BY bucket
