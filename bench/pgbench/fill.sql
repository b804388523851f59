-- The backlog for drain_*.sql: :jobs pending jobs with their outbox rows
-- (psql -v jobs=N).
WITH j AS (
    INSERT INTO limit_bench.jobs (id, job_type)
    SELECT gen_random_uuid(), 'noop' FROM generate_series(1, :jobs)
    RETURNING id
)
INSERT INTO limit_bench.outbox (job_id, message)
SELECT id, jsonb_build_object('jobId', id) FROM j;
