-- Due pending jobs in claim order, without locking them: the `postgres`
-- queue adapter's "messages" (workers then claim by id or in batches).
-- $1 now · $2 limit
SELECT id, attempts
FROM jobs
WHERE status = 'pending' AND run_after <= $1 AND attempts < max_attempts
ORDER BY priority, run_after, created_at, id
LIMIT $2
