-- A job's timeline, oldest first.
-- $1 job id · $2 tenant or NULL
SELECT e.id, e.event, e.from_status::text AS from_status, e.to_status::text AS to_status,
       e.attempt, e.actor, e.detail, e.at
FROM job_events e
JOIN jobs j ON j.id = e.job_id
WHERE e.job_id = $1 AND ($2::text IS NULL OR j.tenant_id = $2)
ORDER BY e.id
