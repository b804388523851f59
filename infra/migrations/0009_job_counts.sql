-- 0009: counts that cost the backlog, not the history.
--
-- `job_counts` holds how many jobs entered and left each status, per tenant,
-- type and minute. Statement-level triggers on `jobs` append one row per
-- (tenant, type, status) a statement changed, so a batch of 500 claims adds
-- two rows, never 500, and no two writers ever update the same row: appends
-- take no lock another writer waits for. The rows commit or
-- roll back with the change they count, so the sum is exact:
--
--   jobs in status S now          = sum(entered - exited) over every row of S
--   jobs that entered S in a minute = sum(entered) over that minute's rows
--
-- The sweeper compacts the appended rows (one row per key and bucket), folds
-- minutes older than an hour into hours and hours older than a day into one
-- row per key at '-infinity' (`compact_job_counts.sql`), so the table holds
-- at most (types x statuses x (60 + 24 + 1)) rows per tenant plus what was
-- appended since the last sweep, whatever the history.
--
-- The migration locks `jobs` against writes (readers go on) while it creates
-- the triggers and counts what is there, so no change falls between the count
-- and the first trigger. On a large table that count is one sequential scan
-- under that lock: run it in a quiet minute (runbook).

-- Waits at most 10 s for the lock (a long writer ahead of it would make every
-- create, claim and completion queue behind the migration): the migration
-- then fails, changes nothing, and can be run again.
SET LOCAL lock_timeout = '10s';
LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;
RESET lock_timeout;

CREATE TABLE job_counts (
    tenant_id text        NOT NULL,
    job_type  text        NOT NULL,
    status    job_status  NOT NULL,
    -- The minute of the change (the statement's own time: `updated_at` of the
    -- row it wrote, so a test's injected clock buckets too); after
    -- compaction, an hour, or '-infinity' for everything older than a day.
    bucket    timestamptz NOT NULL,
    entered   bigint      NOT NULL DEFAULT 0,
    exited    bigint      NOT NULL DEFAULT 0
);

CREATE INDEX job_counts_tenant ON job_counts (tenant_id, bucket);

-- New jobs enter their first status.
CREATE FUNCTION jobline_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (tenant_id, job_type, status, bucket, entered)
    SELECT tenant_id, job_type, status, date_trunc('minute', created_at), count(*)
    FROM new_jobs
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;

-- A transition leaves one status and enters another; an update that keeps
-- the status (a heartbeat, a progress report) counts nothing. The old and
-- the new rows are counted per (tenant, type, status) apart and the two small
-- sets joined (joining the transition tables row by row cost a claim of 500
-- jobs milliseconds: a quarter of the drain's throughput). Within one key,
-- the rows that stayed cancel out: a statement that moved some jobs into a
-- status and others out of it records the net (the counts stay exact; the
-- per-minute "entered" of such rare mixed statements is a lower bound).
-- The bucket is the statement's own time (every transition sets
-- `updated_at`).
CREATE FUNCTION jobline_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH entered AS (
        SELECT tenant_id, job_type, status, count(*) AS n FROM new_jobs GROUP BY 1, 2, 3
    ),
    exited AS (
        SELECT tenant_id, job_type, status, count(*) AS n FROM old_jobs GROUP BY 1, 2, 3
    ),
    moved AS (
        SELECT tenant_id, job_type, status, coalesce(entered.n, 0) AS e, coalesce(exited.n, 0) AS x
        FROM entered FULL JOIN exited USING (tenant_id, job_type, status)
    )
    INSERT INTO job_counts (tenant_id, job_type, status, bucket, entered, exited)
    SELECT tenant_id, job_type, status,
           (SELECT date_trunc('minute', max(updated_at)) FROM new_jobs),
           e - least(e, x), x - least(e, x)
    FROM moved
    WHERE e <> x;
    RETURN NULL;
END $$;

-- Retention's deletes leave the status (at the database's own time).
CREATE FUNCTION jobline_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (tenant_id, job_type, status, bucket, exited)
    SELECT tenant_id, job_type, status, date_trunc('minute', now()), count(*)
    FROM old_jobs
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;

CREATE FUNCTION jobline_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_counts;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_count_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobline_count_inserted();
CREATE TRIGGER jobs_count_updated AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobline_count_updated();
CREATE TRIGGER jobs_count_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobline_count_deleted();
CREATE TRIGGER jobs_count_truncated AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobline_count_truncated();

INSERT INTO job_counts (tenant_id, job_type, status, bucket, entered)
SELECT tenant_id, job_type, status, '-infinity', count(*)
FROM jobs
GROUP BY 1, 2, 3;

-- Every tenant with jobs, one index probe each (a loose scan: the 0007 view
-- `processing_jobs` walks the same way): what the per-tenant index ranges of
-- stats, retention and the audit start from.
CREATE VIEW job_tenants AS
WITH RECURSIVE t (tenant_id) AS (
    (SELECT tenant_id FROM jobs ORDER BY tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT j.tenant_id FROM jobs j WHERE j.tenant_id > t.tenant_id ORDER BY j.tenant_id LIMIT 1)
    FROM t
    WHERE t.tenant_id IS NOT NULL
)
SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL;

-- Retention prunes the dead letter's replay tokens by age.
CREATE INDEX dead_letter_replays_age ON dead_letter_replays (created_at);

-- What the sweeper last told the operators (JOBLINE_ALERT_WEBHOOK_URL): the
-- health verdict, the failure rate, each silent worker. A state moves in the
-- same transaction that posts the alert, so overlapping sweepers post once
-- and a post that fails is tried again by the next sweep.
CREATE TABLE alert_state (
    key        text        PRIMARY KEY,
    state      text        NOT NULL,
    changed_at timestamptz NOT NULL
);
