-- A tenant's dead-lettered outbox rows, newest first: a range of
-- outbox_dead_letter_tenant (migration 0011).
-- $1 tenant · $2 limit
SELECT o.id, o.job_id, o.queue, o.attempts, o.last_error, o.updated_at
FROM outbox o
WHERE o.tenant_id = $1 AND o.status = 'dead_letter'
ORDER BY o.updated_at DESC
LIMIT $2
