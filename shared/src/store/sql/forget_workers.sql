-- Registrations of workers not seen since $1, up to $2 per call: every
-- process start registers a worker id of its own, so without this the table
-- grows by one row per restart. (Their claims, if any, were released by the
-- heartbeat timeout long before.)
-- $1 cutoff · $2 limit
DELETE FROM workers
WHERE id IN (SELECT id FROM workers WHERE last_seen_at < $1 ORDER BY last_seen_at LIMIT $2)
RETURNING id
