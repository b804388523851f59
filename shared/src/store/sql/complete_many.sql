-- processing → completed for many claims in one statement, each row only
-- through its own claim (`attempts` is the fencing token, with the holder: an
-- attempt handed back unstarted is claimed again under the same number): a job whose claim
-- moved on is left alone and simply not returned. One `completed` event per
-- completed job, in the same statement.
-- $1 now · $2 job ids · $3 attempts · $4 results · $5 result uris · $6 workers
WITH input AS (
    SELECT *
    FROM unnest($2::uuid[], $3::int4[], $4::jsonb[], $5::text[], $6::text[])
        AS i (id, attempt, result, result_uri, worker)
),
done AS (
    UPDATE jobs j
    SET status = 'completed', result = i.result, result_uri = i.result_uri,
        completed_at = $1, updated_at = $1,
        locked_by = NULL, locked_at = NULL, heartbeat_at = NULL,
        failure_reason = NULL, error_code = NULL
    FROM input i
    WHERE j.id = i.id AND j.status = 'processing' AND j.attempts = i.attempt AND j.locked_by = i.worker
    RETURNING j.*, i.worker AS completed_by
),
events AS (
    INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
    SELECT id, 'completed', 'processing', 'completed', attempts, completed_by, $1 FROM done
)
SELECT JOB_COLUMNS FROM done
