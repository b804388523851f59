-- One job's life, 1 job(s) per transaction, three transactions (autocommit):
-- 1. enqueue: job rows + outbox rows in one statement;
-- 2. claim: due pending jobs in claim order, FOR UPDATE SKIP LOCKED, marked
--    processing (the ids come back in :ids);
-- 3. complete: those jobs, guarded by status (the fencing check).
-- scripts/bench counts completed rows afterwards, so a claim that found fewer
-- jobs than it asked for is not counted as work done.
WITH j AS (
    INSERT INTO limit_bench.jobs (id, job_type)
    VALUES (gen_random_uuid(), 'noop')
    RETURNING id
)
INSERT INTO limit_bench.outbox (job_id, message)
SELECT id, jsonb_build_object('jobId', id) FROM j;

WITH picked AS (
    SELECT id FROM limit_bench.jobs
    WHERE status = 'pending' AND run_after <= now() AND attempts < max_attempts
    ORDER BY priority, run_after, created_at, id
    LIMIT 1
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
