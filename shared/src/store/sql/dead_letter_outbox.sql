-- A tenant's dead-lettered outbox rows, newest first.
-- $1 tenant · $2 limit
SELECT o.id, o.job_id, o.queue, o.attempts, o.last_error, o.updated_at
FROM outbox o
JOIN jobs j ON j.id = o.job_id
WHERE j.tenant_id = $1 AND o.status = 'dead_letter'
ORDER BY o.updated_at DESC
LIMIT $2
