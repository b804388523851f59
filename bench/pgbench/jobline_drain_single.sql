-- jobline's own claim and complete (the functions claim_jobs and
-- complete_jobs of migration 0010, which shared/src/store/sql/claim_batch.sql
-- and complete_many.sql call, with their `job_events` rows) on the real
-- schema, one job per transaction: what the worker's statements cost at the
-- database, without the worker. scripts/bench fills `jobs` with
-- `jobline bench enqueue` first (untimed) and runs this with -t so the clients
-- claim exactly the backlog.
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(attempts), '{}') AS attempts
FROM claim_jobs('pgbench-' || :client_id, 1)
\gset

SELECT count(*)
FROM complete_jobs(now(), :ids::uuid[], :attempts::int4[],
                   array_fill(NULL::jsonb, ARRAY[cardinality(:ids::uuid[])]),
                   array_fill(NULL::text, ARRAY[cardinality(:ids::uuid[])]),
                   array_fill('pgbench-' || :client_id, ARRAY[cardinality(:ids::uuid[])]));
