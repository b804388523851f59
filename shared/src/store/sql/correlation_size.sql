-- How many of a tenant's jobs carry a correlation id, counted up to $3 (an
-- index-only range of jobs_tenant_correlation, cut): the dashboard sorts a
-- small correlation's jobs (dashboard_jobs_correlated.sql) and reads a big
-- one's in slices (dashboard_jobs.sql).
-- $1 tenant · $2 correlation id · $3 at most
SELECT count(*) AS n
FROM (SELECT 1 FROM jobs WHERE tenant_id = $1 AND correlation_id = $2 LIMIT $3) AS s
