-- Creates jobs, their outbox rows and their `created` events in one
-- statement (so in one transaction), through jobline_create_jobs (migration
-- 0010): the one implementation of a create, shared with the SQL API's
-- enqueue_job, so both compute one request hash and answer an idempotency
-- key alike. One row per input, in input order: a job inserted (with its
-- outbox row), or the job that already held the key (already_existed;
-- conflict when its request differed; every column NULL when the key's
-- owner vanished meanwhile).
--
-- $1 now · $2 tenant · $3 queue · $4 earliest relay time (the creator
-- publishes right after commit; the relay takes over after this grace)
-- $5 the actor of the `created` events (who asked; `initiated_by` is the
-- request's own data) · $6 max attempts for a job that gives none
-- $7..$16 one array per field, one element per job, as the request gave
-- them: ids, types, payloads, priorities, run_after, delay_seconds,
-- max_attempts, correlation ids, idempotency keys, initiated_by
-- $17 each request's pre-0010 hash (for keys stored before 0010)
SELECT JOB_COLUMNS, outbox_id, already_existed, conflict
FROM (
    SELECT (c.job).*, c.outbox_id, c.already_existed, c.conflict, c.ord
    FROM jobline_create_jobs($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) c
) created
ORDER BY ord
