-- Creates jobs, their outbox rows and their `created` events in one statement
-- (so in one transaction). A row whose idempotency key the tenant already used
-- is skipped; the caller reads those back with find_by_keys.sql.
--
-- $1 now · $2 tenant · $3 queue · $4 earliest relay time (the creator
-- publishes right after commit; the relay takes over after this grace)
-- $5..$14 one array per column, one element per job · $15 the actor of the
-- `created` events (who asked; `initiated_by` is the request's own data)
WITH input AS (
    SELECT *
    FROM unnest($5::uuid[], $6::text[], $7::jsonb[], $8::int2[], $9::timestamptz[],
                $10::int4[], $11::text[], $12::text[], $13::text[], $14::text[])
         WITH ORDINALITY
         AS t (id, job_type, payload, priority, run_after,
               max_attempts, correlation_id, idempotency_key, request_hash, initiated_by, ord)
),
inserted AS (
    INSERT INTO jobs (id, tenant_id, job_type, payload, priority, run_after, max_attempts,
                      correlation_id, idempotency_key, request_hash, initiated_by,
                      created_at, updated_at)
    SELECT id, $2, job_type, payload, priority, run_after, max_attempts,
           correlation_id, idempotency_key, request_hash, initiated_by, $1, $1
    FROM input
    ORDER BY ord
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING *
),
outbox_rows AS (
    INSERT INTO outbox (job_id, queue, message, next_attempt_at, created_at, updated_at)
    SELECT id, $3,
           jsonb_build_object('jobId', id, 'timestamp', (extract(epoch FROM $1) * 1000)::bigint),
           greatest(run_after, $4), $1, $1
    FROM inserted
    RETURNING id AS outbox_id, job_id AS outbox_job_id
),
events AS (
    INSERT INTO job_events (job_id, event, to_status, attempt, actor, at)
    SELECT id, 'created', 'pending', 0, $15, $1
    FROM inserted
)
SELECT JOB_COLUMNS, outbox_id FROM inserted JOIN outbox_rows ON outbox_job_id = id
