-- Enqueue :batch jobs in one transaction: the job rows and their outbox rows
-- in one statement (one round trip). scripts/bench runs it with -D batch=1 or
-- batch=50, alone (insert_*) or followed by claim_complete.sql (lifecycle_*);
-- psql -v batch=N fills the backlog the drain_* runs claim.
WITH j AS (
    INSERT INTO limit_bench.jobs (id, job_type)
    SELECT gen_random_uuid(), 'noop' FROM generate_series(1, :batch)
    RETURNING id
)
INSERT INTO limit_bench.outbox (job_id, message)
SELECT id, jsonb_build_object('jobId', id) FROM j;
