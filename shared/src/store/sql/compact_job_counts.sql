-- Compacts `job_counts` (migration 0009): takes up to $3 rows, at most one
-- writer's worth at a time (SKIP LOCKED: two sweepers take disjoint rows),
-- and writes them back summed per key and bucket, with minutes older than an
-- hour folded into their hour and hours older than a day into '-infinity'.
-- Sums are kept, so the counts read the same before and after; a row that
-- sums to nothing is dropped.
-- $1 now - 1 hour · $2 now - 1 day · $3 limit
WITH taken AS (
    DELETE FROM job_counts
    WHERE ctid IN (SELECT ctid FROM job_counts LIMIT $3 FOR UPDATE SKIP LOCKED)
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
