-- One job enqueued: the job row and its outbox row in one transaction (one
-- statement, one round trip). pgbench counts one transaction = one job.
WITH j AS (
    INSERT INTO limit_bench.jobs (id, job_type) VALUES (gen_random_uuid(), 'noop') RETURNING id
)
INSERT INTO limit_bench.outbox (job_id, message)
SELECT id, jsonb_build_object('jobId', id) FROM j;
