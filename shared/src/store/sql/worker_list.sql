-- Registered workers, newest seen first; `gone` when not seen since $2.
-- $1 now · $2 gone cutoff
SELECT id, host, version, queue, concurrency, started_at, last_seen_at, in_flight, processed,
       failed, desired_state, job_types,
       CASE WHEN state = 'stopped' THEN 'stopped'
            WHEN last_seen_at < $2 THEN 'gone'
            WHEN desired_state <> 'running' THEN desired_state
            ELSE state END AS state,
       extract(epoch FROM $1 - last_seen_at)::float8 AS last_seen_seconds_ago
FROM workers
ORDER BY last_seen_at DESC
