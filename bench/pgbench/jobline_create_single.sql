-- What one `POST /v1/jobs` asks of the database, with jobline's own
-- statements on the real schema (jobline_create_jobs of migration 0010, which
-- shared/src/store/sql/create_jobs.sql calls, for one job: job + outbox row +
-- `created` event; the postgres adapter's publish, one pg_notify after
-- commit; mark_published.sql: the outbox row sent + the `published` event).
-- Three transactions per job, as the API runs them; the API key lookup (a
-- primary-key read) is left out.
SELECT outbox_id
FROM jobline_create_jobs(now(), 'bench', 'generation_jobs', now() + interval '30 seconds', 'api', 5,
                         ARRAY[gen_random_uuid()], ARRAY['noop'], ARRAY['{}'::jsonb], ARRAY[2::int2],
                         ARRAY[NULL::timestamptz], ARRAY[NULL::int4], ARRAY[NULL::int4], ARRAY[NULL::text],
                         ARRAY[NULL::text], ARRAY[NULL::text], ARRAY[NULL::text])
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
