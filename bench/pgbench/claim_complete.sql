-- Claim up to :batch due pending jobs in claim order with FOR UPDATE SKIP
-- LOCKED, marked processing (the ids come back in :ids), then complete them
-- guarded by status (the fencing check): two transactions (autocommit).
-- scripts/bench runs it alone on a backlog filled first (drain_*, with -t so
-- the clients claim exactly the backlog) or after enqueue.sql (lifecycle_*);
-- jobs/s counts completed rows, so a claim that found fewer jobs than it
-- asked for is not counted as work done.
WITH picked AS (
    SELECT id FROM limit_bench.jobs
    WHERE status = 'pending' AND run_after <= now() AND attempts < max_attempts
    ORDER BY priority, run_after, created_at, id
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE limit_bench.jobs j
    SET status = 'processing', attempts = j.attempts + 1, locked_by = 'pgbench-' || :client_id,
        locked_at = now(), heartbeat_at = now(), started_at = now(), updated_at = now()
    FROM picked WHERE j.id = picked.id
    RETURNING j.id
)
SELECT coalesce(array_agg(id), '{}') AS ids FROM claimed
\gset

UPDATE limit_bench.jobs
SET status = 'completed', result = '{}'::jsonb, completed_at = now(), updated_at = now(),
    locked_by = NULL, locked_at = NULL, heartbeat_at = NULL
WHERE id = ANY (:ids::uuid[]) AND status = 'processing';
