-- 0008: every transition of a job rewrites its row (status is in an index
-- key, so no update is HOT) and so inserts an entry into every index of
-- `jobs`, and every event one into every index of `job_events`. Two of
-- those indexes did little for their cost.
--
-- 1. `jobs_tenant_recent` goes: a tenant's list without a status filter is
--    read as the merge of its per-status ranges of `jobs_tenant_status_recent`
--    (list_jobs.sql), and the tenants' loose scan (`processing_jobs`) uses a
--    tenant-led index too.
-- 2. `job_events` keeps its identity column (the timeline's order) and the
--    timeline index (job_id, id), but no primary key index: nothing looks an
--    event up by id alone.
--
-- (The idempotency key's unique constraint stays whole, NULLs and all,
-- though an index of only the keyed jobs was cheaper: the create's
-- ON CONFLICT of the previous release names the constraint's columns, and a
-- partial index would not match it, so a rollback could not create jobs.)

DROP INDEX jobs_tenant_recent;
ALTER TABLE job_events DROP CONSTRAINT job_events_pkey;
