-- Compacts `job_counts` (migration 0009): the rows of every (key, bucket)
-- that needs it (more than one row, or a bucket its age folds: minutes older
-- than $1 into their hour, hours older than $2 into '-infinity') are taken
-- (SKIP LOCKED: two sweepers take disjoint rows) and written back as one row
-- each. Sums are kept, so the counts read the same before and after; a row
-- that sums to nothing is dropped. Rows already compact are not touched, so
-- an idle queue's sweep writes nothing. The table is small (a few rows per
-- tenant, type, status and hour, plus what was appended since the last
-- sweep): one pass reads it whole.
-- $1 now - 1 hour · $2 now - 1 day
WITH targets AS (
    SELECT ctid AS row_id, tenant_id, job_type, status, bucket,
           CASE WHEN bucket < $2 THEN '-infinity'::timestamptz
                WHEN bucket < $1 THEN date_trunc('hour', bucket)
                ELSE bucket END AS target
    FROM job_counts
),
needed AS (
    SELECT tenant_id, job_type, status, target
    FROM targets
    GROUP BY tenant_id, job_type, status, target
    HAVING count(*) > 1 OR bool_or(bucket <> target)
),
locked AS (
    SELECT c.ctid AS row_id
    FROM job_counts c
    WHERE c.ctid IN (SELECT t.row_id FROM targets t JOIN needed n USING (tenant_id, job_type, status, target))
    FOR UPDATE SKIP LOCKED
),
taken AS (
    DELETE FROM job_counts
    WHERE ctid IN (SELECT row_id FROM locked)
    RETURNING *
),
folded AS (
    INSERT INTO job_counts (tenant_id, job_type, status, bucket, entered, exited)
    SELECT tenant_id, job_type, status, b,
           -- Beyond a day only the net count matters: keep one number.
           CASE WHEN b = '-infinity' THEN sum(entered - exited) ELSE sum(entered) END,
           CASE WHEN b = '-infinity' THEN 0 ELSE sum(exited) END
    FROM (SELECT taken.*,
                 CASE WHEN bucket < $2 THEN '-infinity'::timestamptz
                      WHEN bucket < $1 THEN date_trunc('hour', bucket)
                      ELSE bucket END AS b
          FROM taken) AS t
    GROUP BY tenant_id, job_type, status, b
    HAVING CASE WHEN b = '-infinity' THEN sum(entered - exited) <> 0
                ELSE sum(entered) <> 0 OR sum(exited) <> 0 END
    RETURNING 1
)
SELECT (SELECT count(*) FROM taken) AS taken, (SELECT count(*) FROM folded) AS written
