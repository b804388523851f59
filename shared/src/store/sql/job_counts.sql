-- Jobs by status and type, for the metrics (`jobline_jobs{status,type}`),
-- from `job_counts` (migration 0009: exact, a few rows per tenant, type and
-- hour), never from the jobs themselves; only the pairs that have jobs.
-- $1 tenant or NULL for all
SELECT status::text AS status, job_type, sum(entered - exited)::bigint AS n
FROM job_counts
WHERE $1::text IS NULL OR tenant_id = $1
GROUP BY status, job_type
HAVING sum(entered - exited) <> 0
ORDER BY job_type, status
