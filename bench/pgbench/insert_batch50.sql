-- 50 jobs enqueued in one transaction (jobs + outbox rows in one statement).
WITH j AS (
    INSERT INTO limit_bench.jobs (id, job_type)
    SELECT gen_random_uuid(), 'noop' FROM generate_series(1, 50)
    RETURNING id
)
INSERT INTO limit_bench.outbox (job_id, message)
SELECT id, jsonb_build_object('jobId', id) FROM j;
