-- What one `POST /v1/jobs` asks of the database, with jobline's own
-- statements on the real schema (shared/src/store/sql/create_jobs.sql for one
-- job: job + outbox row + `created` event; the postgres adapter's publish,
-- one pg_notify after commit; mark_published.sql: the outbox row sent + the
-- `published` event). Three transactions per job, as the API runs them; the
-- API key lookup (a primary-key read) is left out.
WITH inserted AS (
    INSERT INTO jobs (id, tenant_id, job_type, payload, priority, run_after, max_attempts,
                      correlation_id, idempotency_key, request_hash, initiated_by,
                      created_at, updated_at)
    VALUES (gen_random_uuid(), 'bench', 'noop', '{}'::jsonb, 2, now(), 5,
            NULL, NULL, md5(random()::text), NULL, now(), now())
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING *
),
outbox_rows AS (
    INSERT INTO outbox (job_id, queue, message, next_attempt_at, created_at, updated_at)
    SELECT id, 'generation_jobs',
           jsonb_build_object('jobId', id, 'timestamp', (extract(epoch FROM now()) * 1000)::bigint),
           now() + interval '30 seconds', now(), now()
    FROM inserted
    RETURNING id AS outbox_id, job_id AS outbox_job_id
),
events AS (
    INSERT INTO job_events (job_id, event, to_status, attempt, actor, at)
    SELECT id, 'created', 'pending', 0, 'api', now() FROM inserted
)
SELECT outbox_id FROM inserted JOIN outbox_rows ON outbox_job_id = id
\gset

SELECT pg_notify('jobline_generation_jobs', '1');

WITH sent AS (
    UPDATE outbox
    SET status = 'sent', sent_at = now(), updated_at = now(), attempts = attempts + 1, last_error = NULL
    WHERE id = ANY (ARRAY[:outbox_id::int8]) AND status IN ('pending', 'failed')
    RETURNING id, job_id, queue
)
INSERT INTO job_events (job_id, event, actor, detail, at)
SELECT job_id, 'published', 'pgbench', jsonb_build_object('queue', queue, 'outbox_id', id), now()
FROM sent;
