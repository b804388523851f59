-- Jobs by status and type, for the metrics (`jobline_jobs{status,type}`).
-- A plain GROUP BY over `jobs` for now.
-- $1 tenant or NULL for all
SELECT status::text AS status, job_type, count(*) AS n
FROM jobs
WHERE $1::text IS NULL OR tenant_id = $1
GROUP BY status, job_type
ORDER BY job_type, status
