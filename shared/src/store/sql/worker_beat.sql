-- A worker's registration and heartbeat in one upsert; answers what the
-- operator wants it to do.
-- $1 now · $2 id · $3 host · $4 version · $5 queue · $6 concurrency
-- $7 started · $8 in flight · $9 processed · $10 failed · $11 state
-- $12 job types (NULL: every type)
INSERT INTO workers (id, host, version, queue, concurrency, started_at, last_seen_at,
                     in_flight, processed, failed, state, job_types)
VALUES ($2, $3, $4, $5, $6, $7, $1, $8, $9, $10, $11, $12)
ON CONFLICT (id) DO UPDATE
SET last_seen_at = $1, in_flight = $8, processed = $9, failed = $10, state = $11,
    host = $3, version = $4, queue = $5, concurrency = $6, started_at = $7, job_types = $12
RETURNING desired_state
